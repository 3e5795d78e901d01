//! Measurements counted into their metric, each metric's phase, and the run's phase, message,
//! summaries and Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::metric::{Count, Prepared};
use crate::api::{AnalysisPhase, AnalysisRunStatus, Measurement, MetricResult, RunSummary};
use crate::plan::Event;

/// Metadata of a Prometheus measurement: the query after its arguments were filled in.
pub const RESOLVED_QUERY: &str = "ResolvedPrometheusQuery";

/// Adds `measurement` to `result` (replacing the in-flight one it finishes), updates the
/// counters when it is finished, and keeps the newest `retention` measurements.
pub fn record(result: &mut MetricResult, mut measurement: Measurement, finishes_in_flight: bool, retention: usize) {
    if finishes_in_flight {
        result.measurements.pop();
    }
    // The resolved query is the metric's, as upstream keeps it: once, not in every measurement.
    if let Some(query) = measurement.metadata.remove(RESOLVED_QUERY) {
        result.metadata.insert(RESOLVED_QUERY.into(), query);
    }
    if measurement.finished_at.is_some() {
        let counted = measurement.phase != AnalysisPhase::Error;
        match measurement.phase {
            AnalysisPhase::Successful => result.successful += 1,
            AnalysisPhase::Failed => result.failed += 1,
            AnalysisPhase::Inconclusive => result.inconclusive += 1,
            _ => result.error += 1,
        }
        // Errors are retried: they don't use up the count, and only they break a run of successes.
        result.count += i32::from(counted);
        result.consecutive_error = if counted { 0 } else { result.consecutive_error + 1 };
        result.consecutive_success =
            if measurement.phase == AnalysisPhase::Successful { result.consecutive_success + 1 } else { 0 };
    }
    result.measurements.push(measurement);
    let excess = result.measurements.len().saturating_sub(retention.max(1));
    result.measurements.drain(..excess);
}

/// A metric's phase from its counters, and the reason when it ended badly or by a limit.
fn metric_phase(prepared: &Prepared, result: &MetricResult, terminating: bool) -> (AnalysisPhase, Option<String>) {
    let Some(last) = result.measurements.last() else {
        return if terminating {
            (AnalysisPhase::Inconclusive, Some("Metric Terminated before its first measurement".into()))
        } else {
            (AnalysisPhase::Pending, None)
        };
    };
    if last.finished_at.is_none() {
        return (AnalysisPhase::Running, None);
    }
    // Later checks win when several hold: Error over Inconclusive over Failed, as upstream.
    let mut ended = None;
    if let Some(limit) = prepared.failure_limit.filter(|limit| i64::from(result.failed) > *limit) {
        ended = Some((AnalysisPhase::Failed, format!("failed ({}) > failureLimit ({limit})", result.failed)));
    }
    if i64::from(result.inconclusive) > prepared.inconclusive_limit {
        let reason =
            format!("inconclusive ({}) > inconclusiveLimit ({})", result.inconclusive, prepared.inconclusive_limit);
        ended = Some((AnalysisPhase::Inconclusive, reason));
    }
    if i64::from(result.consecutive_error) > prepared.consecutive_error_limit {
        let reason = format!(
            "consecutiveErrors ({}) > consecutiveErrorLimit ({})",
            result.consecutive_error, prepared.consecutive_error_limit
        );
        ended = Some((AnalysisPhase::Error, reason));
    }
    if let Some((phase, reason)) = ended {
        return (phase, Some(reason));
    }
    let success_limit = prepared.consecutive_success_limit;
    if success_limit > 0 && i64::from(result.consecutive_success) >= success_limit {
        return (AnalysisPhase::Successful, Some(format!("ConsecutiveSuccessLimit ({success_limit}) Reached")));
    }
    if matches!(prepared.count, Count::Bounded(count) if i64::from(result.count) >= count) {
        return match (prepared.failure_limit, success_limit > 0) {
            (Some(failure_limit), true) => (
                AnalysisPhase::Inconclusive,
                Some(format!(
                    "ConsecutiveSuccessLimit ({success_limit}) Not Reached and FailureLimit ({failure_limit}) Not Violated"
                )),
            ),
            (None, true) => {
                (AnalysisPhase::Failed, Some(format!("ConsecutiveSuccessLimit ({success_limit}) Not Reached")))
            }
            _ => (AnalysisPhase::Successful, None),
        };
    }
    if terminating {
        return (AnalysisPhase::Successful, Some("Metric Terminated".into()));
    }
    (AnalysisPhase::Running, None)
}

/// Whether the run stops measuring: it was asked to, or a metric that counts already ended badly.
pub fn terminating(terminate: bool, metrics: &[Prepared], status: &AnalysisRunStatus) -> bool {
    terminate
        || metrics.iter().filter(|prepared| !prepared.dry_run).any(|prepared| {
            super::schedule::result_of(status, &prepared.metric.name).is_some_and(|result| {
                matches!(result.phase, AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive)
            })
        })
}

fn event(prefix: &str, phase: AnalysisPhase, message: String) -> Event {
    let reason = match (prefix, phase) {
        ("Metric", AnalysisPhase::Successful) => "MetricSuccessful",
        ("Metric", AnalysisPhase::Failed) => "MetricFailed",
        ("Metric", AnalysisPhase::Error) => "MetricError",
        ("Metric", _) => "MetricInconclusive",
        (_, AnalysisPhase::Successful) => "AnalysisRunSuccessful",
        (_, AnalysisPhase::Failed) => "AnalysisRunFailed",
        (_, AnalysisPhase::Error) => "AnalysisRunError",
        _ => "AnalysisRunInconclusive",
    };
    Event { warning: matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error), reason, message }
}

/// Sets every metric's phase and message, then the run's phase, message, summaries and
/// completion time; returns the Events of what completed.
pub fn assess(metrics: &[Prepared], status: &mut AnalysisRunStatus, terminate: bool, now: Timestamp) -> Vec<Event> {
    let terminating = terminating(terminate, metrics, status);
    let mut events = Vec::new();
    let mut run = RunSummary::default();
    let mut dry = RunSummary::default();
    let mut worst: Option<(AnalysisPhase, Option<String>)> = None;
    let mut all_completed = true;
    for prepared in metrics {
        let Some(result) = status.metric_results.iter_mut().find(|r| r.name == prepared.metric.name) else {
            continue;
        };
        result.dry_run = prepared.dry_run;
        if !result.phase.completed() {
            let (phase, reason) = metric_phase(prepared, result, terminating);
            if phase.completed() {
                let last = result.measurements.last().and_then(|m| m.message.clone());
                result.message = match (prepared.dry_run, &reason, last) {
                    (true, Some(reason), _) => Some(format!("Metric assessed {phase} due to {reason}")),
                    (false, Some(reason), Some(last)) if phase != AnalysisPhase::Successful => {
                        Some(format!("Metric \"{}\" assessed {phase} due to {reason}: {last}", result.name))
                    }
                    (false, Some(reason), _) => {
                        Some(format!("Metric \"{}\" assessed {phase} due to {reason}", result.name))
                    }
                    (_, None, _) => None,
                };
                events.push(event("Metric", phase, format!("Metric '{}' Completed. Result: {phase}", result.name)));
            }
            result.phase = phase;
        }
        let summary = if prepared.dry_run { &mut dry } else { &mut run };
        summary.count += 1;
        match result.phase {
            AnalysisPhase::Successful => summary.successful += 1,
            AnalysisPhase::Failed => summary.failed += 1,
            AnalysisPhase::Inconclusive => summary.inconclusive += 1,
            AnalysisPhase::Error => summary.error += 1,
            _ => {}
        }
        if prepared.dry_run {
            continue;
        }
        all_completed &= result.phase.completed();
        if worst.as_ref().is_none_or(|(phase, _)| result.phase.severity() > phase.severity()) {
            worst = Some((result.phase, result.message.clone()));
        }
    }
    let was_completed = status.phase.completed();
    let (phase, message) = match worst {
        _ if !all_completed => (AnalysisPhase::Running, None),
        None => (AnalysisPhase::Successful, None),
        Some((phase, message)) => (phase, message),
    };
    status.phase = phase;
    // A run stopped on request that found nothing wrong says so, rather than why a metric ended.
    status.message =
        if terminate && phase == AnalysisPhase::Successful { Some("Run Terminated".into()) } else { message };
    status.run_summary = Some(run);
    status.dry_run_summary = (dry.count > 0).then_some(dry);
    if phase.completed() && !was_completed {
        status.completed_at = Some(Time(now));
        events.push(event("AnalysisRun", phase, format!("Analysis Completed. Result: {phase}")));
    }
    events
}
