//! The Kubernetes client: a token bucket for API QPS and burst, and a counter of every request
//! by verb, resource and response code.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::ClientBuilder;
use tower::{Layer, Service};

use super::metrics::Metrics;

/// Requests per second on average, and how many may go at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub qps: f64,
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// A token bucket shared by every request of the client.
#[derive(Clone)]
struct TokenBucket {
    limit: RateLimit,
    state: Arc<Mutex<Bucket>>,
}

impl TokenBucket {
    fn new(limit: RateLimit) -> Self {
        let bucket = Bucket { tokens: f64::from(limit.burst), refilled: Instant::now() };
        TokenBucket { limit, state: Arc::new(Mutex::new(bucket)) }
    }

    /// Takes a token, returning how long to wait before it may be used.
    fn reserve(&self, now: Instant) -> Duration {
        let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refill = now.saturating_duration_since(bucket.refilled).as_secs_f64() * self.limit.qps;
        bucket.tokens = (bucket.tokens + refill).min(f64::from(self.limit.burst));
        bucket.refilled = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 || self.limit.qps <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.limit.qps)
        }
    }
}

/// Layer that rate-limits and counts requests.
#[derive(Clone)]
pub struct ApiLayer {
    bucket: Option<TokenBucket>,
    metrics: Metrics,
}

impl<S> Layer<S> for ApiLayer {
    type Service = ApiService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiService { inner, bucket: self.bucket.clone(), metrics: self.metrics.clone(), wait: None, reserved: false }
    }
}

pub struct ApiService<S> {
    inner: S,
    bucket: Option<TokenBucket>,
    metrics: Metrics,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A token is held for the next call.
    reserved: bool,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ApiService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let (Some(bucket), false) = (&self.bucket, self.reserved) {
            let delay = bucket.reserve(Instant::now());
            self.reserved = true;
            if !delay.is_zero() {
                self.wait = Some(Box::pin(tokio::time::sleep(delay)));
            }
        }
        if let Some(wait) = self.wait.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        self.reserved = false;
        let (verb, resource) = classify(request.method(), request.uri().path(), request.uri().query());
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            metrics.api_request(verb, resource, code);
            result
        })
    }
}

/// The Kubernetes verb and resource of a request, from its method and path.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/group/version/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        _ => return (verb_of(method, false, false), "other".into()),
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("discovery".to_string(), false),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, subresource, ..] => (format!("{resource}/{subresource}"), true),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    (verb_of(method, named, watch), resource)
}

fn verb_of(method: &Method, named: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// A client whose requests are rate-limited (when `limit` is set) and counted in `metrics`.
pub fn build(config: kube::Config, limit: Option<RateLimit>, metrics: Metrics) -> Result<Client, kube::Error> {
    let layer = ApiLayer { bucket: limit.map(TokenBucket::new), metrics };
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_verb_and_resource() {
        let c = |method: Method, path: &str, query: Option<&str>| {
            let (verb, resource) = classify(&method, path, query);
            format!("{verb} {resource}")
        };
        assert_eq!(c(Method::GET, "/apis/apps/v1/namespaces/ns/replicasets", None), "list replicasets");
        assert_eq!(
            c(Method::GET, "/apis/apps/v1/replicasets", Some("watch=true&labelSelector=x")),
            "watch replicasets"
        );
        assert_eq!(
            c(Method::PATCH, "/apis/argoproj.io/v1alpha1/namespaces/ns/rollouts/web/status", None),
            "patch rollouts/status"
        );
        assert_eq!(c(Method::GET, "/api/v1/namespaces/ns/services/web", None), "get services");
        assert_eq!(c(Method::POST, "/api/v1/namespaces/ns/pods/p/eviction", None), "create pods/eviction");
        assert_eq!(c(Method::GET, "/api/v1/namespaces", None), "list namespaces");
        assert_eq!(c(Method::GET, "/apis/networking.istio.io", None), "list discovery");
        assert_eq!(c(Method::GET, "/version", None), "list other");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_spaces_requests() {
        let bucket = TokenBucket::new(RateLimit { qps: 10.0, burst: 2 });
        let start = Instant::now();
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        assert_eq!(bucket.reserve(start), Duration::ZERO);
        let third = bucket.reserve(start);
        assert!((third.as_secs_f64() - 0.1).abs() < 1e-6, "{third:?}");
        let fourth = bucket.reserve(start);
        assert!((fourth.as_secs_f64() - 0.2).abs() < 1e-6, "{fourth:?}");
        // A second later the bucket is full again (capped at the burst).
        assert_eq!(bucket.reserve(start + Duration::from_secs(2)), Duration::ZERO);
    }
}
