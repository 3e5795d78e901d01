//! What a run's outcome means in words: which metric decided it, its last value, the condition
//! and the count that ended it, for the abort message, the pause message and what a step waits
//! for.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{AnalysisPhase, AnalysisRun, Metric, MetricResult};

pub fn phase(run: &AnalysisRun) -> AnalysisPhase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// Why `run` ended as it did, naming the metric, e.g. `metric "success-rate" failed: value
/// [0.82] does not satisfy successCondition "result[0] >= 0.99" (2 failures > failureLimit 1)`.
pub fn verdict(run: &AnalysisRun) -> String {
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let status = run.status.clone().unwrap_or_default();
    let deciding = status.metric_results.iter().filter(|r| !r.dry_run && r.phase == status.phase).find_map(|result| {
        let metric = run.spec.metrics.iter().find(|m| m.name == result.name)?;
        Some(metric_verdict(metric, result))
    });
    match deciding {
        Some(verdict) => format!("{verdict} (analysis run {name})"),
        None => {
            let message = status.message.as_deref().unwrap_or("no message");
            format!("analysis run {name} {}: {message}", status.phase)
        }
    }
}

fn metric_verdict(metric: &Metric, result: &MetricResult) -> String {
    let last = result.measurements.last();
    let what = last.and_then(|m| m.message.clone()).or_else(|| last.and_then(|m| m.value.clone()));
    let what = what.or_else(|| result.message.clone()).unwrap_or_else(|| "no measurement".into());
    let limit = |value: &Option<IntOrString>, default: i32| match value {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(text)) => text.clone(),
        None => default.to_string(),
    };
    let (verb, count) = match result.phase {
        AnalysisPhase::Failed => (
            "failed",
            format!("{} > failureLimit {}", plural(result.failed, "failure"), limit(&metric.failure_limit, 0)),
        ),
        AnalysisPhase::Error => (
            "errored",
            format!(
                "{} in a row > consecutiveErrorLimit {}",
                plural(result.consecutive_error, "error"),
                limit(&metric.consecutive_error_limit, 4)
            ),
        ),
        _ => (
            "was inconclusive",
            format!(
                "{} inconclusive > inconclusiveLimit {}",
                result.inconclusive,
                limit(&metric.inconclusive_limit, 0)
            ),
        ),
    };
    format!("metric \"{}\" {verb}: {what} ({count})", result.name)
}

fn plural(count: i32, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// How far a run that hasn't ended is: `Running, 2 of 5 measurements`.
pub fn progress(run: &AnalysisRun) -> String {
    let status = run.status.clone().unwrap_or_default();
    let taken: i32 = status.metric_results.iter().map(|r| r.count).sum();
    let planned: Option<i64> = run.spec.metrics.iter().map(planned_measurements).sum();
    match planned {
        Some(planned) => format!("{}, {taken} of {planned} measurements", status.phase),
        None => format!("{}, {taken} measurements", status.phase),
    }
}

/// One measurement without an interval; `count` with one; none known without a count.
fn planned_measurements(metric: &Metric) -> Option<i64> {
    match (&metric.count, &metric.interval) {
        (Some(IntOrString::Int(n)), _) => Some(i64::from(*n)),
        (Some(IntOrString::String(text)), _) => text.parse().ok(),
        (None, None) => Some(1),
        (None, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(status: serde_json::Value) -> AnalysisRun {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "web-abc-2-1"},
            "spec": {"metrics": [
                {"name": "success-rate", "interval": "1m", "count": 5, "failureLimit": 1,
                 "successCondition": "result[0] >= 0.99", "provider": {"prometheus": {"query": "q"}}},
                {"name": "latency", "provider": {"web": {"url": "http://x"}}}
            ]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_verdict_names_the_metric_its_value_the_condition_and_the_count() {
        let failed = run(json!({"phase": "Failed", "metricResults": [
            {"name": "latency", "phase": "Successful", "count": 1, "successful": 1},
            {"name": "success-rate", "phase": "Failed", "count": 2, "failed": 2, "measurements": [
                {"phase": "Failed", "value": "[0.82]", "message": "value [0.82] does not satisfy successCondition \"result[0] >= 0.99\""}
            ]}
        ]}));
        assert_eq!(
            verdict(&failed),
            "metric \"success-rate\" failed: value [0.82] does not satisfy successCondition \"result[0] >= 0.99\" (2 failures > failureLimit 1) (analysis run web-abc-2-1)"
        );
        let errored = run(json!({"phase": "Error", "metricResults": [
            {"name": "latency", "phase": "Error", "error": 5, "consecutiveError": 5, "measurements": [
                {"phase": "Error", "message": "connection refused"}
            ]}
        ]}));
        assert_eq!(
            verdict(&errored),
            "metric \"latency\" errored: connection refused (5 errors in a row > consecutiveErrorLimit 4) (analysis run web-abc-2-1)"
        );
        let invalid = run(json!({"phase": "Error", "message": "Analysis spec invalid: metrics[0]: no provider"}));
        assert_eq!(verdict(&invalid), "analysis run web-abc-2-1 Error: Analysis spec invalid: metrics[0]: no provider");
    }

    #[test]
    fn progress_counts_measurements_against_the_planned_ones() {
        let running = run(json!({"phase": "Running", "metricResults": [
            {"name": "success-rate", "phase": "Running", "count": 2, "successful": 2}
        ]}));
        assert_eq!(progress(&running), "Running, 2 of 6 measurements");
    }
}
