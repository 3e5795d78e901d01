//! What every reconcile shares: the client, the caches, the metrics and Event sink (`Context`),
//! the controller-wide `Settings`, and the `Error`s a reconcile can end with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplate;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{ApiResource, DynamicObject};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::api::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout, RouteKind, WorkloadKind};
use crate::cache::{Cache, Key, References};
use crate::cached::{CachedReplicaSet, CachedService};
use crate::plan::{self, PlanConfig};
use crate::run_store::RunStore;
use crate::runtime::events::EventSink;
use crate::runtime::metrics::Metrics;
use crate::written::WrittenCopies;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding a patch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ReplicaSet {0} exists and belongs to something else; retrying with a new pod-template hash")]
    HashCollision(String),
    #[error("ReplicaSet {0} can't be created again: another object holds its name")]
    NameTaken(String),
    #[error("the apiserver rejected the pod template: {0}")]
    InvalidTemplate(String),
    #[error("{0} {1} exists and belongs to something else")]
    Taken(&'static str, String),
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
            Error::NameTaken(_) => "name_taken",
            Error::InvalidTemplate(_) => "invalid_template",
            Error::Taken(..) => "name_taken_by_another_owner",
            Error::NoVirtualServiceApi => "no_virtualservice_api",
            Error::NotSynced => "not_synced",
        }
    }
}

/// How long to wait after the `count`th failure in a row: 0.5 s, 1 s, 2 s ... 5 min.
pub fn retry_delay(count: u32) -> std::time::Duration {
    let base = std::time::Duration::from_millis(500);
    base.saturating_mul(1 << count.saturating_sub(1).min(10)).min(std::time::Duration::from_secs(300))
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

/// The objects of one router kind, watched from when a Rollout first references one and the
/// cluster serves the kind (looked for every 10 s until then).
pub struct RouteCache {
    pub watched: Watched<DynamicObject>,
    /// Whether the lookup for the kind's API has started.
    looking: AtomicBool,
    served: AtomicBool,
}

impl RouteCache {
    fn new() -> Self {
        RouteCache { watched: Watched::new(), looking: AtomicBool::new(false), served: AtomicBool::new(false) }
    }

    /// True exactly once: for the caller that should look for the API and then watch.
    pub fn claim_lookup(&self) -> bool {
        !self.looking.swap(true, Ordering::SeqCst)
    }

    pub fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }

    pub fn set_served(&self) {
        self.served.store(true, Ordering::SeqCst);
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
    /// Stable and canary Ingresses of the nginx router.
    pub ingresses: Watched<Ingress>,
    /// ApisixRoutes, HTTPRoutes and GRPCRoutes (see `RouteKind`).
    route_caches: HashMap<RouteKind, RouteCache>,
    /// AnalysisRuns, watched once for this loop and the AnalysisRun loop.
    pub analysis_runs: RunStore,
    pub analysis_templates: Watched<AnalysisTemplate>,
    /// Watched only without --namespace (a Role can't grant a cluster-scoped kind).
    pub cluster_analysis_templates: Watched<ClusterAnalysisTemplate>,
    virtual_service_api: RwLock<Option<ApiResource>>,
    pub events: EventSink,
    pub metrics: Metrics,
    /// Rollouts as this controller last wrote them, until the cache catches up.
    written: WrittenCopies<Rollout>,
    /// Consecutive failures per Rollout, for exponential backoff.
    failures: Mutex<HashMap<Key, u32>>,
    /// Where watches started later send reconcile requests.
    pub triggers: OnceLock<mpsc::Sender<Trigger>>,
    /// Starts the watch of a rarely used kind the first time a Rollout uses one (set by `run`).
    pub lazy_watches: OnceLock<fn(&Arc<Context>, Lazy)>,
}

/// A request to reconcile one Rollout.
pub type Trigger = ObjectRef<DeserializeGuard<Rollout>>;

/// A kind watched only once a Rollout references an object of it.
#[derive(Clone, Copy, Debug)]
pub enum Lazy {
    Workload(WorkloadKind),
    AnalysisTemplates,
    ClusterAnalysisTemplates,
    Ingresses,
    Routes(RouteKind),
}

impl Context {
    /// `instance` names this process in Events (reportingInstance).
    pub fn new(client: Client, settings: Settings, instance: String, metrics: Metrics) -> Self {
        let events = EventSink::start(client.clone(), instance, metrics.clone());
        Context {
            client,
            settings,
            replica_sets: Cache::new(crate::cached::replica_set_owner),
            deployments: Watched::new(),
            workload_replica_sets: Watched::new(),
            pod_templates: Watched::new(),
            services: Watched::new(),
            virtual_services: Watched::new(),
            ingresses: Watched::new(),
            route_caches: RouteKind::ALL.into_iter().map(|kind| (kind, RouteCache::new())).collect(),
            analysis_runs: RunStore::default(),
            analysis_templates: Watched::new(),
            cluster_analysis_templates: Watched::new(),
            virtual_service_api: RwLock::new(None),
            events,
            metrics,
            written: WrittenCopies::default(),
            failures: Mutex::default(),
            triggers: OnceLock::new(),
            lazy_watches: OnceLock::new(),
        }
    }

    /// Forgets the failures of a Rollout that reconciled.
    pub fn succeeded(&self, rollout: &Key) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(rollout);
    }

    /// Counts a failure of a Rollout; returns how many in a row.
    pub fn failed(&self, rollout: &Key) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(rollout.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// Asks for the objects of `kind` to be watched (and cached) from now on.
    pub fn watch_kind(self: &Arc<Self>, kind: Lazy) {
        if let Some(start) = self.lazy_watches.get() {
            start(self, kind);
        }
    }

    pub fn routes(&self, kind: RouteKind) -> &RouteCache {
        &self.route_caches[&kind]
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
            &self.ingresses.refs,
            &self.analysis_templates.refs,
            &self.cluster_analysis_templates.refs,
        ]
        .into_iter()
        .chain(self.route_caches.values().map(|routes| &routes.watched.refs))
        {
            refs.remove(rollout);
        }
        self.written.forget(rollout);
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(rollout);
        self.metrics.forget_rollout(&rollout.0, &rollout.1);
    }

    /// The newer of the cached Rollout and the one this controller last wrote: a reconcile
    /// triggered before our own write reaches the cache must not act on the older state.
    pub(crate) fn freshest(&self, cached: &Rollout) -> Rollout {
        self.written.freshest(cached)
    }

    /// The cache has a Rollout at least as new as the one we wrote: forget ours.
    pub fn cache_caught_up(&self, cached: &Rollout) {
        self.written.caught_up(cached);
    }

    pub(crate) fn remember_written(&self, rollout: Rollout) {
        self.written.remember(rollout);
    }

    pub fn caches_synced(&self) -> bool {
        self.replica_sets.synced()
            && self.deployments.synced_or_idle()
            && self.workload_replica_sets.synced_or_idle()
            && self.pod_templates.synced_or_idle()
            && self.services.synced_or_idle()
            && self.virtual_services.synced_or_idle()
            && self.ingresses.synced_or_idle()
            && self.analysis_runs.synced()
            && self.analysis_templates.synced_or_idle()
            && self.cluster_analysis_templates.synced_or_idle()
            && self.route_caches.values().all(|routes| routes.watched.synced_or_idle())
    }
}
