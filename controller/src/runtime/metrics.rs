//! Prometheus metrics in the OpenMetrics text format. Per-Rollout labels only on the info and
//! phase gauges (one series each), never on histograms.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::plan::Action;
use crate::runtime::analysis_metrics::AnalysisMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: &'static str,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    name: String,
    strategy: &'static str,
    traffic_router: &'static str,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    name: String,
    phase: &'static str,
}

const PHASES: [&str; 4] = ["Healthy", "Progressing", "Paused", "Degraded"];

/// The controller's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Metrics named like upstream's, without our prefix, so dashboards and alerts carry over.
    unprefixed: Arc<Registry>,
    reconciles: Counter,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histogram,
    writes: Family<WriteLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    rollout_info: Family<RolloutLabels, Gauge>,
    rollout_phase: Family<PhaseLabels, Gauge>,
    pause_to_step: Histogram,
    queue_depth: Gauge,
    events_dropped: Counter,
    pub analysis: AnalysisMetrics,
    /// The info labels last set per Rollout, to remove the old series when they change.
    info_labels: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), RolloutLabels>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::DefaultReplicas | Action::AddFinalizer | Action::RemoveFinalizer | Action::AnnotateRollout { .. } => {
            "rollout"
        }
        Action::CreateReplicaSet(_)
        | Action::RecreateReplicaSet(_)
        | Action::AdoptReplicaSet { .. }
        | Action::PatchReplicaSet { .. }
        | Action::DeleteReplicaSet { .. }
        | Action::SetTemplateMetadata { .. } => "replicaset",
        Action::RecordTemplate(_) | Action::DeleteTemplateRecord { .. } => "controllerrevision",
        Action::SetServiceSelector { .. } => "service",
        Action::SetVirtualServiceWeights { .. } | Action::PatchVirtualService { .. } => "virtualservice",
        Action::CreateIngress(_) | Action::PatchIngress { .. } => "ingress",
        Action::ScaleWorkload { .. } => "deployment",
        Action::EvictPod { .. } | Action::SetPodMetadata { .. } => "pod",
        Action::CreateAnalysisRun(_) | Action::TerminateAnalysisRun { .. } | Action::DeleteAnalysisRun { .. } => {
            "analysisrun"
        }
        Action::PatchRoute { kind, .. } | Action::CreateRoute { kind, .. } | Action::DeleteRoute { kind, .. } => {
            kind.gvk().3
        }
    }
}

/// What a Rollout's info and phase gauges say.
pub struct RolloutInfo<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub traffic_router: &'static str,
    pub phase: &'a str,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rollouts_controller");
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciles of Rollouts", reconciles.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles by error category", reconcile_errors.clone());
        let reconcile_duration = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]);
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", reconcile_duration.clone());
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register("writes", "Writes the controller made, by object kind and outcome", writes.clone());
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Kubernetes API requests by verb, resource and response code",
            requests.clone(),
        );
        let pause_to_step = Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        registry.register(
            "pause_expiry_to_step_seconds",
            "Seconds from a timed pause's expiry to the write that moved past it",
            pause_to_step.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Reconcile requests from watched objects waiting to be taken",
            queue_depth.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Kubernetes Events not written because too many were waiting",
            events_dropped.clone(),
        );
        let mut unprefixed = Registry::default();
        let analysis = AnalysisMetrics::register(&mut registry, &mut unprefixed);
        let rollout_info = Family::<RolloutLabels, Gauge>::default();
        unprefixed.register("rollout_info", "Information about each Rollout (always 1)", rollout_info.clone());
        let rollout_phase = Family::<PhaseLabels, Gauge>::default();
        unprefixed.register(
            "rollout_phase",
            "1 for the phase each Rollout is in, 0 for the others",
            rollout_phase.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            unprefixed: Arc::new(unprefixed),
            reconciles,
            reconcile_errors,
            reconcile_duration,
            writes,
            requests,
            rollout_info,
            rollout_phase,
            pause_to_step,
            queue_depth,
            events_dropped,
            analysis,
            info_labels: Arc::default(),
        }
    }

    pub fn reconciled(&self, took: Duration, error: Option<&'static str>) {
        self.reconciles.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
        if let Some(category) = error {
            self.reconcile_errors.get_or_create(&ErrorLabels { category }).inc();
        }
    }

    pub fn wrote(&self, action: &Action) {
        self.writes.get_or_create(&WriteLabels { kind: action_kind(action), outcome: "ok" }).inc();
    }

    pub fn write_failed(&self, action: &Action) {
        self.writes.get_or_create(&WriteLabels { kind: action_kind(action), outcome: "error" }).inc();
    }

    pub fn wrote_status(&self) {
        self.writes.get_or_create(&WriteLabels { kind: "rollout_status", outcome: "ok" }).inc();
    }

    pub fn api_request(&self, verb: &'static str, resource: String, code: String) {
        self.requests.get_or_create(&RequestLabels { verb, resource, code }).inc();
    }

    pub fn pause_expired(&self, late_by: Duration) {
        self.pause_to_step.observe(late_by.as_secs_f64());
    }

    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Records a Rollout's phase after a reconcile.
    pub fn rollout(&self, info: RolloutInfo<'_>) {
        let key = (info.namespace.to_string(), info.name.to_string());
        let labels = RolloutLabels {
            namespace: key.0.clone(),
            name: key.1.clone(),
            strategy: "canary",
            traffic_router: info.traffic_router,
            phase: info.phase.to_string(),
        };
        let mut known = self.info_labels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = known.insert(key.clone(), labels.clone())
            && old != labels
        {
            self.rollout_info.remove(&old);
        }
        self.rollout_info.get_or_create(&labels).set(1);
        for phase in PHASES {
            let labels = PhaseLabels { namespace: key.0.clone(), name: key.1.clone(), phase };
            self.rollout_phase.get_or_create(&labels).set(i64::from(phase == info.phase));
        }
    }

    /// Drops the series of a deleted Rollout.
    pub fn forget_rollout(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        if let Some(old) = self.info_labels.lock().unwrap_or_else(|p| p.into_inner()).remove(&key) {
            self.rollout_info.remove(&old);
        }
        for phase in PHASES {
            self.rollout_phase.remove(&PhaseLabels { namespace: key.0.clone(), name: key.1.clone(), phase });
        }
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing into a String can't fail.
        let _ = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.unprefixed))
            .and_then(|()| encode_eof(&mut out));
        out
    }
}
