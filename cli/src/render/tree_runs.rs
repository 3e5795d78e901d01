//! A rollout's AnalysisRuns in the tree of `get`: each run with its measurement counts, then
//! its metrics, and for a metric that went wrong the value and message that made it so.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rollouts_controller::api::{AnalysisPhase, AnalysisRun, MetricResult};

use super::analysis::{LIST_MESSAGE_WIDTH, MetricView, badge, health, metrics_of, one_line, phase_of, truncate};
use super::tree::{Row, branch};
use super::{Style, age_of};

/// The rows of `run` and its metrics, the run being a child of a revision drawn at `indent`.
pub(super) fn run_rows(run: &AnalysisRun, indent: &str, last: bool, now: Timestamp, style: Style) -> Vec<Row> {
    let (connector, run_indent) = branch(last);
    let mut rows = vec![Row {
        name: format!("{indent}{connector}{}{}", style.node_icon("⊞"), run.name_any()),
        kind: "AnalysisRun",
        status: badge(style, phase_of(run)),
        age: age_of(&run.metadata, now),
        info: counts(run, style),
    }];
    let metrics = metrics_of(run);
    for (position, metric) in metrics.iter().enumerate() {
        let (metric_connector, _) = branch(position + 1 == metrics.len());
        let dry_run = if metric.dry_run { " (dry run)" } else { "" };
        rows.push(Row {
            name: format!("{indent}{run_indent}{metric_connector} {}{dry_run}", metric.name),
            kind: "Metric",
            status: badge(style, metric.phase()),
            age: String::new(),
            info: what_went_wrong(metric).unwrap_or_default(),
        });
    }
    rows
}

/// Measurements by phase over all metrics, the phases that have some: `✔ 3,✖ 1` with icons,
/// `successful:3,failed:1` without.
fn counts(run: &AnalysisRun, style: Style) -> String {
    let results = run.status.as_ref().map(|s| s.metric_results.as_slice()).unwrap_or_default();
    let total = |count: fn(&MetricResult) -> i32| results.iter().map(count).sum::<i32>();
    let tally = [
        (AnalysisPhase::Successful, total(|r| r.successful)),
        (AnalysisPhase::Failed, total(|r| r.failed)),
        (AnalysisPhase::Inconclusive, total(|r| r.inconclusive)),
        (AnalysisPhase::Error, total(|r| r.error)),
    ];
    let shown: Vec<String> = tally
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(phase, count)| {
            if style.icons {
                style.badge(health(phase), &count.to_string())
            } else {
                format!("{}:{count}", phase.as_str().to_lowercase())
            }
        })
        .collect();
    shown.join(",")
}

/// For a Failed, Error or Inconclusive metric: the newest measurement of that phase's value,
/// and its message (or else the metric's), cut to one short line.
fn what_went_wrong(metric: &MetricView) -> Option<String> {
    let phase = metric.phase();
    if !matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive) {
        return None;
    }
    let result = metric.result?;
    let measurement = result.measurements.iter().rev().find(|m| m.phase == phase);
    let value = measurement.and_then(|m| m.value.as_deref()).map(|value| format!("value:{}", one_line(value)));
    let message = [measurement.and_then(|m| m.message.as_deref()), result.message.as_deref()]
        .into_iter()
        .flatten()
        .find(|message| !message.is_empty())
        .map(one_line);
    let parts: Vec<String> = value.into_iter().chain(message).collect();
    (!parts.is_empty()).then(|| truncate(&parts.join("; "), LIST_MESSAGE_WIDTH))
}
