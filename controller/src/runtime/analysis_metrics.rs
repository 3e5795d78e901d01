//! Metrics of AnalysisRuns: upstream's `analysis_run_info` and `analysis_run_metric_phase`
//! (unprefixed, so dashboards carry over), and our measurement counts and lateness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::AnalysisPhase;

const PHASES: [AnalysisPhase; 6] = [
    AnalysisPhase::Pending,
    AnalysisPhase::Running,
    AnalysisPhase::Successful,
    AnalysisPhase::Failed,
    AnalysisPhase::Error,
    AnalysisPhase::Inconclusive,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    namespace: String,
    name: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricPhaseLabels {
    namespace: String,
    name: String,
    metric: String,
    r#type: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MeasurementLabels {
    provider: String,
    phase: &'static str,
}

/// The metric-phase series set for each run (namespace, name).
type SeriesByRun = HashMap<(String, String), Vec<MetricPhaseLabels>>;

#[derive(Clone)]
pub struct AnalysisMetrics {
    run_info: Family<RunLabels, Gauge>,
    metric_phase: Family<MetricPhaseLabels, Gauge>,
    measurements: Family<MeasurementLabels, Counter>,
    lateness: Histogram,
    /// The series set per run, to remove them when it is deleted.
    known: Arc<Mutex<SeriesByRun>>,
}

/// One metric of a run as the gauges report it.
pub struct MetricState<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub phase: AnalysisPhase,
}

impl AnalysisMetrics {
    pub fn register(prefixed: &mut Registry, unprefixed: &mut Registry) -> Self {
        let metrics = AnalysisMetrics {
            run_info: Family::default(),
            metric_phase: Family::default(),
            measurements: Family::default(),
            lateness: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            known: Arc::default(),
        };
        unprefixed.register("analysis_run_info", "1 for the phase each AnalysisRun is in", metrics.run_info.clone());
        unprefixed.register(
            "analysis_run_metric_phase",
            "1 for the phase each metric of each AnalysisRun is in, 0 for the others",
            metrics.metric_phase.clone(),
        );
        prefixed.register(
            "analysis_measurements",
            "Measurements taken, by provider and phase",
            metrics.measurements.clone(),
        );
        prefixed.register(
            "analysis_measurement_lateness_seconds",
            "Seconds from when a measurement was due to when it was taken",
            metrics.lateness.clone(),
        );
        metrics
    }

    pub fn measured(&self, provider: &str, phase: AnalysisPhase, late_by: Duration) {
        self.measurements.get_or_create(&MeasurementLabels { provider: provider.into(), phase: phase.as_str() }).inc();
        self.lateness.observe(late_by.as_secs_f64());
    }

    /// Records a run's phase and its metrics' phases after a reconcile.
    pub fn run(&self, namespace: &str, name: &str, phase: AnalysisPhase, metrics: &[MetricState<'_>]) {
        for each in PHASES {
            let labels = RunLabels { namespace: namespace.into(), name: name.into(), phase: each.as_str() };
            self.run_info.get_or_create(&labels).set(i64::from(each == phase));
        }
        let mut series = Vec::new();
        for metric in metrics {
            for each in PHASES {
                let labels = MetricPhaseLabels {
                    namespace: namespace.into(),
                    name: name.into(),
                    metric: metric.name.into(),
                    r#type: metric.provider.into(),
                    phase: each.as_str(),
                };
                self.metric_phase.get_or_create(&labels).set(i64::from(each == metric.phase));
                series.push(labels);
            }
        }
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert((namespace.into(), name.into()), series);
    }

    /// Drops the series of a deleted run.
    pub fn forget_run(&self, namespace: &str, name: &str) {
        for each in PHASES {
            self.run_info.remove(&RunLabels { namespace: namespace.into(), name: name.into(), phase: each.as_str() });
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner()).remove(&(namespace.into(), name.into()));
        for labels in known.unwrap_or_default() {
            self.metric_phase.remove(&labels);
        }
    }
}
