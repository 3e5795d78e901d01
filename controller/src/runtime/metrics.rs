//! Prometheus metrics in the OpenMetrics text format. No per-Rollout labels on histograms.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::plan::Action;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// The controller's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Counter,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histogram,
    writes: Family<WriteLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::DefaultReplicas | Action::AddFinalizer | Action::RemoveFinalizer | Action::AnnotateRevision { .. } => {
            "rollout"
        }
        Action::CreateReplicaSet(_)
        | Action::AdoptReplicaSet { .. }
        | Action::PatchReplicaSet { .. }
        | Action::DeleteReplicaSet { .. } => "replicaset",
        Action::SetServiceSelector { .. } => "service",
        Action::SetVirtualServiceWeights { .. } => "virtualservice",
        Action::ScaleWorkload { .. } => "deployment",
        Action::EvictPod { .. } => "pod",
    }
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
        Metrics { registry: Arc::new(registry), reconciles, reconcile_errors, reconcile_duration, writes }
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

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String can't fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
