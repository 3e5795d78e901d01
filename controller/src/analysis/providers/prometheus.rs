//! `prometheus`: an instant query. A vector or matrix is a list of numbers, a scalar a number.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Answer, describe, timeout};
use crate::analysis::assess::RESOLVED_QUERY;
use crate::analysis::condition::Value;
use crate::api::PrometheusMetric;

/// Used when a metric names no address, as upstream.
const ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

pub async fn query(http: &reqwest::Client, metric: &PrometheusMetric) -> Result<Answer, String> {
    let address = metric.address.clone().or_else(|| std::env::var(ADDRESS_ENV).ok()).unwrap_or_default();
    if address.is_empty() {
        return Err(format!("prometheus address is not configured (set provider.prometheus.address or {ADDRESS_ENV})"));
    }
    let url = query_url(&address)?;
    let mut request = http.post(url).timeout(timeout(metric.timeout, 30)).form(&[("query", metric.query.as_str())]);
    for header in &metric.headers {
        request = request.header(&header.key, &header.value);
    }
    if let Some(authentication) = &metric.authentication {
        let basic =
            authentication.get("basicAuth").filter(|_| authentication.as_object().is_some_and(|a| a.len() == 1));
        let Some(basic) = basic else {
            return Err("prometheus authentication: only basicAuth is supported by this controller yet (pass a bearer token in headers, from a Secret through args)".into());
        };
        let field = |name: &str| basic.get(name).and_then(Json::as_str).map(str::to_string);
        request = request.basic_auth(field("username").unwrap_or_default(), field("password"));
    }
    if metric.range_query.is_some() {
        return Err("prometheus rangeQuery is not supported by this controller yet".into());
    }
    let response = request.send().await.map_err(|error| format!("querying Prometheus: {}", describe(&error)))?;
    let status = response.status();
    let text = response.text().await.map_err(|error| format!("reading Prometheus's answer: {}", describe(&error)))?;
    let body: Json = serde_json::from_str(&text)
        .map_err(|error| format!("Prometheus answered {status} with a body that isn't its JSON API: {error}"))?;
    if body.get("status").and_then(Json::as_str) != Some("success") {
        let kind = body.get("errorType").and_then(Json::as_str).unwrap_or("error");
        let error = body.get("error").and_then(Json::as_str).unwrap_or("no error message");
        return Err(format!("Prometheus answered {status}: {kind}: {error}"));
    }
    let mut metadata = BTreeMap::from([(RESOLVED_QUERY.to_string(), metric.query.clone())]);
    if let Some(warnings) = body.get("warnings").and_then(Json::as_array).filter(|w| !w.is_empty()) {
        metadata.insert("warnings".into(), Json::Array(warnings.clone()).to_string());
    }
    let data = &body["data"];
    let value = match data["resultType"].as_str() {
        Some("vector") => samples(data, "value").map(Value::List),
        Some("matrix") => samples(data, "values").map(Value::List),
        Some("scalar") => sample(&data["result"]).map(Value::Number),
        other => return Err(format!("Prometheus metric type not supported: {}", other.unwrap_or("none"))),
    }
    .ok_or("Prometheus's answer has a malformed result")?;
    Ok(Answer { value, metadata })
}

/// `<address>/api/v1/query`, keeping a path prefix (http://host/prometheus → …/prometheus/api/v1/query).
fn query_url(address: &str) -> Result<reqwest::Url, String> {
    let mut base = reqwest::Url::parse(address)
        .ok()
        .filter(|url| url.has_host() && matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| format!("prometheus address {address:?} is not a URL such as http://prometheus:9090"))?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join("api/v1/query").map_err(|error| error.to_string())
}

/// Every sample of every series, in the order Prometheus returned them.
fn samples(data: &Json, field: &str) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for series in data["result"].as_array()? {
        match field {
            "value" => values.push(Value::Number(sample(&series["value"])?)),
            _ => {
                for point in series["values"].as_array()? {
                    values.push(Value::Number(sample(point)?));
                }
            }
        }
    }
    Some(values)
}

/// `[timestamp, "value"]` → value; "NaN", "+Inf" and "-Inf" included.
fn sample(point: &Json) -> Option<f64> {
    point.get(1)?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_path_follows_the_address() {
        let url = |address: &str| query_url(address).map(|u| u.to_string());
        assert_eq!(url("http://prometheus:9090"), Ok("http://prometheus:9090/api/v1/query".into()));
        assert_eq!(url("http://prometheus:9090/"), Ok("http://prometheus:9090/api/v1/query".into()));
        assert_eq!(url("https://gw/prometheus"), Ok("https://gw/prometheus/api/v1/query".into()));
        assert!(url("prometheus:9090").is_err());
        assert!(url("").is_err());
    }

    #[test]
    fn samples_are_read_in_order_with_nan_and_infinities() {
        let data = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {}, "value": [1, "0.5"]}, {"metric": {}, "value": [1, "NaN"]}, {"metric": {}, "value": [1, "+Inf"]}
        ]});
        let values = samples(&data, "value").unwrap();
        assert_eq!(values[0], Value::Number(0.5));
        assert!(matches!(values[1], Value::Number(n) if n.is_nan()));
        assert_eq!(values[2], Value::Number(f64::INFINITY));
        let matrix = serde_json::json!({"result": [{"values": [[1, "1"], [2, "2"]]}, {"values": [[1, "3"]]}]});
        assert_eq!(samples(&matrix, "values").unwrap(), [1.0, 2.0, 3.0].map(Value::Number));
    }
}
