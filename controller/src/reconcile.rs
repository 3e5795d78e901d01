//! One reconcile of one Rollout: observe -> plan -> apply (actions, status, events) -> requeue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplate;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;
use tracing::{Instrument, info_span};

use crate::api::Rollout;
use crate::apply::events::EventSink;
use crate::cache::{Cache, Key, References, key_of};
use crate::cached::{CachedReplicaSet, CachedService};
use crate::plan::{self, PlanConfig};
use crate::runtime::metrics::{Metrics, RolloutInfo};
use crate::{apply, observe};

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding a patch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ReplicaSet {0} exists and belongs to something else; retrying with a new pod-template hash")]
    HashCollision(String),
    #[error("the apiserver rejected the pod template: {0}")]
    InvalidTemplate(String),
    #[error("the VirtualService API is not available")]
    NoVirtualServiceApi,
    #[error("caches are not synced yet")]
    NotSynced,
}

impl Error {
    /// A short category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(status)) if status.code == 422 => "invalid",
            Error::Kube(_) => "api",
            Error::Json(_) => "encoding",
            Error::HashCollision(_) => "hash_collision",
            Error::InvalidTemplate(_) => "invalid_template",
            Error::NoVirtualServiceApi => "no_virtualservice_api",
            Error::NotSynced => "not_synced",
        }
    }
}

/// A cache of referenced objects of one kind, and who references them.
pub struct Watched<K> {
    pub cache: Cache<K>,
    pub refs: References,
    /// Whether its watch runs. Kinds that few Rollouts use are watched only once one does.
    started: AtomicBool,
}

impl<K: kube::Resource> Watched<K> {
    fn new() -> Self {
        Watched { cache: Cache::new(|_| None), refs: References::default(), started: AtomicBool::new(false) }
    }

    /// True exactly once: for the caller that should start the watch.
    pub fn claim_start(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    /// Answers from the cache are complete: its watch runs and has listed everything.
    pub fn complete(&self) -> bool {
        self.started.load(Ordering::SeqCst) && self.cache.synced()
    }

    fn synced_or_idle(&self) -> bool {
        !self.started.load(Ordering::SeqCst) || self.cache.synced()
    }
}

/// Settings that shape every reconcile.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Manage only Rollouts labelled with this instance id (else only unlabelled ones).
    pub instance_id: Option<String>,
    pub plan: PlanConfig,
    /// Awaited after each write of a reconcile (tests only).
    pub after_write: Option<WriteHook>,
}

/// Awaited after each write a reconcile makes (an action, or `None` for the status), before its
/// next one. Tests pass one that never finishes and then stop the controller there: a crash
/// between two writes.
#[derive(Clone)]
pub struct WriteHook(pub Arc<AfterWrite>);

pub type AfterWrite = dyn Fn(Option<&plan::Action>) -> futures::future::BoxFuture<'static, ()> + Send + Sync;

impl std::fmt::Debug for WriteHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteHook")
    }
}

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    /// ReplicaSets with the pod-template-hash label, indexed by controller uid (or orphan/<ns>).
    pub replica_sets: Cache<CachedReplicaSet>,
    pub deployments: Watched<Deployment>,
    pub workload_replica_sets: Watched<ReplicaSet>,
    pub pod_templates: Watched<PodTemplate>,
    pub services: Watched<CachedService>,
    pub virtual_services: Watched<DynamicObject>,
    virtual_service_api: RwLock<Option<ApiResource>>,
    pub events: EventSink,
    pub metrics: Metrics,
    /// Rollouts as this controller last wrote them, until the cache catches up.
    written: Mutex<HashMap<Key, Arc<Rollout>>>,
    /// Consecutive failures per Rollout, for exponential backoff.
    failures: Mutex<HashMap<Key, u32>>,
    /// Where watches started later (see `runtime::watch_workload_kind`) send reconcile requests.
    pub triggers: OnceLock<mpsc::Sender<Trigger>>,
}

/// A request to reconcile one Rollout.
pub type Trigger = ObjectRef<DeserializeGuard<Rollout>>;

impl Context {
    /// `instance` names this process in Events (reportingInstance).
    pub fn new(client: Client, settings: Settings, instance: String, metrics: Metrics) -> Self {
        let events = EventSink::start(client.clone(), instance, metrics.clone());
        Context {
            client,
            settings,
            replica_sets: Cache::new(observe::replica_set_owner),
            deployments: Watched::new(),
            workload_replica_sets: Watched::new(),
            pod_templates: Watched::new(),
            services: Watched::new(),
            virtual_services: Watched::new(),
            virtual_service_api: RwLock::new(None),
            events,
            metrics,
            written: Mutex::default(),
            failures: Mutex::default(),
            triggers: OnceLock::new(),
        }
    }

    pub fn virtual_service_api(&self) -> Option<ApiResource> {
        self.virtual_service_api.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_virtual_service_api(&self, resource: ApiResource) {
        *self.virtual_service_api.write().unwrap_or_else(|p| p.into_inner()) = Some(resource);
    }

    /// Forgets a Rollout that no longer exists.
    pub fn forget(&self, rollout: &Key) {
        for refs in [
            &self.deployments.refs,
            &self.workload_replica_sets.refs,
            &self.pod_templates.refs,
            &self.services.refs,
            &self.virtual_services.refs,
        ] {
            refs.remove(rollout);
        }
        self.written.lock().unwrap_or_else(|p| p.into_inner()).remove(rollout);
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(rollout);
        self.metrics.forget_rollout(&rollout.0, &rollout.1);
    }

    /// The newer of the cached Rollout and the one this controller last wrote: a reconcile
    /// triggered before our own write reaches the cache must not act on the older state.
    fn freshest(&self, cached: &Rollout) -> Rollout {
        let key = key_of(cached);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let version = |r: &Rollout| r.resource_version().and_then(|v| v.parse::<u64>().ok());
        match written.get(&key) {
            Some(ours) if ours.metadata.uid == cached.metadata.uid && version(ours) > version(cached) => {
                (**ours).clone()
            }
            Some(_) => {
                written.remove(&key);
                cached.clone()
            }
            None => cached.clone(),
        }
    }

    /// The cache has a Rollout at least as new as the one we wrote: forget ours.
    pub fn cache_caught_up(&self, cached: &Rollout) {
        let key = key_of(cached);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let version = |r: &Rollout| r.resource_version().and_then(|v| v.parse::<u64>().ok());
        if written.get(&key).is_some_and(|ours| version(ours) <= version(cached)) {
            written.remove(&key);
        }
    }

    fn remember_written(&self, rollout: Rollout) {
        self.written.lock().unwrap_or_else(|p| p.into_inner()).insert(key_of(&rollout), Arc::new(rollout));
    }

    pub fn caches_synced(&self) -> bool {
        self.replica_sets.synced()
            && self.deployments.synced_or_idle()
            && self.workload_replica_sets.synced_or_idle()
            && self.pod_templates.synced_or_idle()
            && self.services.synced_or_idle()
            && self.virtual_services.synced_or_idle()
    }
}

const LONGEST_REQUEUE: Duration = Duration::from_secs(24 * 3600);

/// Clock for plans; tests of the controller itself inject time through `plan`.
fn now() -> Timestamp {
    Timestamp::now()
}

/// Namespace and name of a Rollout, readable or not.
pub fn guard_key(object: &DeserializeGuard<Rollout>) -> Key {
    match &object.0 {
        Ok(rollout) => key_of(rollout),
        Err(invalid) => {
            (invalid.metadata.namespace.clone().unwrap_or_default(), invalid.metadata.name.clone().unwrap_or_default())
        }
    }
}

pub async fn reconcile(object: Arc<DeserializeGuard<Rollout>>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let (namespace, name) = guard_key(&object);
    let span = info_span!("reconcile", namespace = %namespace, name = %name);
    let started = Instant::now();
    let result = reconcile_inner(&object, &ctx).instrument(span.clone()).await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().err().map(Error::category));
    let key = (namespace, name);
    if result.is_ok() {
        ctx.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
    }
    result
}

async fn reconcile_inner(object: &DeserializeGuard<Rollout>, ctx: &Arc<Context>) -> Result<Requeue, Error> {
    let cached = match &object.0 {
        Ok(rollout) => rollout,
        Err(invalid) => {
            let (namespace, name) = guard_key(object);
            tracing::warn!(error = %invalid.error, "rollout can't be read");
            apply::write_invalid_object(ctx, &namespace, &name, &invalid.error).await?;
            return Ok(Requeue::await_change());
        }
    };
    if !ctx.caches_synced() {
        return Err(Error::NotSynced);
    }
    if let Some(triggers) = ctx.triggers.get() {
        ctx.metrics.set_queue_depth(triggers.max_capacity() - triggers.capacity());
    }
    let rollout = ctx.freshest(cached);
    let observed = observe::observe(ctx, &rollout, now()).await?;
    let plan = plan::plan(&observed);
    tracing::debug!(actions = plan.actions.len(), phase = ?plan.status.phase, "planned");
    let (namespace, name) = key_of(&rollout);
    ctx.metrics.rollout(RolloutInfo {
        namespace: &namespace,
        name: &name,
        traffic_router: if rollout.spec.strategy.canary.as_ref().is_some_and(|c| c.traffic_routing.is_some()) {
            "Istio"
        } else {
            ""
        },
        phase: plan.status.phase.as_deref().unwrap_or_default(),
    });
    match apply::apply(ctx, &observed, &plan).await {
        Ok(written) => {
            if let Some(expired) = plan.pause_expired_at {
                ctx.metrics.pause_expired(Duration::try_from(now().duration_since(expired)).unwrap_or_default());
            }
            if let Some(written) = written {
                ctx.remember_written(written);
            }
        }
        Err(Error::InvalidTemplate(message)) => {
            // The apiserver is the judge of pod templates: report its verdict as InvalidSpec.
            let invalid = plan::invalid_template(&observed, &message);
            apply::apply(ctx, &observed, &invalid).await?;
            return Ok(Requeue::await_change());
        }
        Err(error) => return Err(error),
    }
    // The time is absolute: the writes above took time, and the next look must not be late. A
    // time years away (a long pause) is looked at again daily instead of overflowing a timer.
    Ok(match plan.requeue_at {
        Some(at) => {
            let wait = Duration::try_from(at.duration_since(now())).unwrap_or(Duration::ZERO);
            Requeue::requeue(wait.min(LONGEST_REQUEUE))
        }
        None => Requeue::await_change(),
    })
}

/// Transient failures retry with exponential backoff per Rollout: 0.5 s, 1 s, 2 s ... 5 min.
pub fn error_policy(object: Arc<DeserializeGuard<Rollout>>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = guard_key(&object);
    let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    let count = failures.entry(key.clone()).or_insert(0);
    *count = count.saturating_add(1);
    let delay = Duration::from_millis(500).saturating_mul(1 << (*count - 1).min(10)).min(Duration::from_secs(300));
    tracing::warn!(namespace = %key.0, name = %key.1, category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}
