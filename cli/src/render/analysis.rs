//! `get analysisrun NAME` (the run, then each metric with its latest measurements) and
//! `list analysisruns`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use regex::Regex;
use rollouts_controller::api::{AnalysisPhase, AnalysisRun, Measurement, Metric, MetricResult};

use super::get::{LABEL_WIDTH, field};
use super::{Health, Style, age_of, since, table};

/// Measurements shown per metric: the newest ones (the run keeps up to its retention limit).
const SHOWN_MEASUREMENTS: usize = 5;
/// Characters of a run's message that `list` shows.
pub(super) const LIST_MESSAGE_WIDTH: usize = 60;

pub(super) fn health(phase: AnalysisPhase) -> Health {
    match phase {
        AnalysisPhase::Successful => Health::Healthy,
        AnalysisPhase::Pending | AnalysisPhase::Running => Health::Progressing,
        AnalysisPhase::Failed => Health::Degraded,
        AnalysisPhase::Error => Health::Error,
        AnalysisPhase::Inconclusive => Health::Unknown,
    }
}

pub(super) fn badge(style: Style, phase: AnalysisPhase) -> String {
    style.badge(health(phase), phase.as_str())
}

/// The badge of a run's phase as a Rollout's status writes it (text the plugin may not know).
pub(super) fn status_badge(style: Style, status: &str) -> String {
    match serde_json::from_value(serde_json::Value::from(status)) {
        Ok(phase) => badge(style, phase),
        Err(_) => style.badge(Health::Unknown, status),
    }
}

/// A metric of the spec with its result, or a result whose metric left the spec.
pub(super) struct MetricView<'a> {
    pub(super) name: &'a str,
    spec: Option<&'a Metric>,
    pub(super) result: Option<&'a MetricResult>,
    pub(super) dry_run: bool,
}

impl MetricView<'_> {
    pub(super) fn phase(&self) -> AnalysisPhase {
        self.result.map_or(AnalysisPhase::Pending, |r| r.phase)
    }
}

/// Whether `spec.dryRun` names the metric: its patterns are searched, not anchored, as the
/// controller (and upstream) read them. The result's flag says it once the metric has one.
fn dry_run_in_spec(run: &AnalysisRun, name: &str) -> bool {
    run.spec.dry_run.iter().any(|rule| Regex::new(&rule.metric_name).is_ok_and(|pattern| pattern.is_match(name)))
}

/// The metrics in the spec's order, each with its result.
pub(super) fn metrics_of(run: &AnalysisRun) -> Vec<MetricView<'_>> {
    let results = run.status.as_ref().map(|s| s.metric_results.as_slice()).unwrap_or_default();
    let mut views: Vec<MetricView> = run
        .spec
        .metrics
        .iter()
        .map(|metric| {
            let result = results.iter().find(|r| r.name == metric.name);
            let dry_run = result.map_or_else(|| dry_run_in_spec(run, &metric.name), |r| r.dry_run);
            MetricView { name: &metric.name, spec: Some(metric), result, dry_run }
        })
        .collect();
    for result in results {
        if !views.iter().any(|view| view.name == result.name) {
            views.push(MetricView { name: &result.name, spec: None, result: Some(result), dry_run: result.dry_run });
        }
    }
    views
}

/// `2/3 successful`, counting the metrics that decide the run; dry runs are counted apart.
fn metrics_summary(run: &AnalysisRun) -> String {
    let metrics = metrics_of(run);
    let (dry, deciding): (Vec<&MetricView>, Vec<&MetricView>) = metrics.iter().partition(|m| m.dry_run);
    let successful = deciding.iter().filter(|m| m.phase() == AnalysisPhase::Successful).count();
    let mut text = format!("{successful}/{} successful", deciding.len());
    if !dry.is_empty() {
        text.push_str(&format!(" (+{} dry run)", dry.len()));
    }
    text
}

/// Whitespace (newlines of a multi-line query or message) collapsed to single spaces.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `width` characters, the last one `…` when cut.
pub(super) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

pub(super) fn phase_of(run: &AnalysisRun) -> AnalysisPhase {
    run.status.as_ref().map_or(AnalysisPhase::Pending, |s| s.phase)
}

/// Everything `get analysisrun NAME` prints.
pub fn render_analysis_run(run: &AnalysisRun, now: Timestamp, style: Style) -> String {
    let mut out = String::new();
    field(&mut out, "Name", &run.name_any());
    field(&mut out, "Namespace", &run.namespace().unwrap_or_default());
    let phase = phase_of(run);
    let mut status = badge(style, phase);
    // Asked to stop, and the controller hasn't ended it yet.
    if run.spec.terminate && !phase.completed() {
        status.push_str(" (terminating)");
    }
    field(&mut out, "Status", &status);
    if let Some(message) = run.status.as_ref().and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty()) {
        field(&mut out, "Message", message);
    }
    field(&mut out, "Metrics", &metrics_summary(run));
    for metric in metrics_of(run) {
        out.push('\n');
        render_metric(&mut out, &metric, now, style);
    }
    out
}

fn render_metric(out: &mut String, metric: &MetricView, now: Timestamp, style: Style) {
    let dry_run = if metric.dry_run { " (dry run)" } else { "" };
    field(out, "Metric", &format!("{}{dry_run}", metric.name));
    field(out, "  Status", &badge(style, metric.phase()));
    if let Some(message) = metric.result.and_then(|r| r.message.as_deref()).filter(|m| !m.is_empty()) {
        field(out, "  Message", &one_line(message));
    }
    if let Some(spec) = metric.spec {
        render_provider(out, spec);
        if let Some(condition) = &spec.success_condition {
            field(out, "  Succeeds if", &one_line(condition));
        }
        if let Some(condition) = &spec.failure_condition {
            field(out, "  Fails if", &one_line(condition));
        }
    }
    let Some(result) = metric.result else { return };
    let counts = format!(
        "{} successful, {} failed, {} inconclusive, {} error, {} consecutive errors",
        result.successful, result.failed, result.inconclusive, result.error, result.consecutive_error
    );
    field(out, "  Counts", &counts);
    render_measurements(out, &result.measurements, now, style);
}

fn render_provider(out: &mut String, spec: &Metric) {
    let provider = &spec.provider;
    match provider.name() {
        Ok(name) => field(out, "  Provider", &name),
        Err(problem) => field(out, "  Provider", &format!("- ({problem})")),
    }
    // What is measured, for the providers that say it in one line.
    if let Some(prometheus) = &provider.prometheus {
        field(out, "  Query", &one_line(&prometheus.query));
    } else if let Some(web) = &provider.web {
        field(out, "  URL", &web.url);
    }
}

/// The newest measurements, oldest of them first, aligned under the label.
fn render_measurements(out: &mut String, measurements: &[Measurement], now: Timestamp, style: Style) {
    if measurements.is_empty() {
        field(out, "  Measurements", "none yet");
        return;
    }
    let hidden = measurements.len().saturating_sub(SHOWN_MEASUREMENTS);
    let heading = match hidden {
        0 => "newest last".to_string(),
        _ => format!("newest last ({hidden} older not shown)"),
    };
    field(out, "  Measurements", &heading);
    let rows: Vec<Vec<String>> = measurements[hidden..]
        .iter()
        .map(|measurement| {
            let mut row = vec![
                badge(style, measurement.phase),
                measurement.value.as_deref().map_or_else(|| "-".to_string(), one_line),
                when(measurement, now),
            ];
            if let Some(message) = measurement.message.as_deref().filter(|m| !m.is_empty()) {
                row.push(one_line(message));
            }
            row
        })
        .collect();
    for line in table(&rows).lines() {
        out.push_str(&format!("{:LABEL_WIDTH$}{line}\n", ""));
    }
}

/// When a measurement finished, or since when one in flight has been running.
fn when(measurement: &Measurement, now: Timestamp) -> String {
    match (&measurement.finished_at, &measurement.started_at) {
        (Some(MicroTime(finished)), _) => format!("{} ago", since(finished, now)),
        (None, Some(MicroTime(started))) => format!("running for {}", since(started, now)),
        (None, None) => "-".to_string(),
    }
}

/// `list analysisruns`: one line per run.
pub fn render_analysis_runs(runs: &[AnalysisRun], all_namespaces: bool, now: Timestamp, style: Style) -> String {
    let mut header = vec!["NAME", "STATUS", "METRICS", "AGE", "MESSAGE"];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for run in runs {
        let message = run.status.as_ref().and_then(|s| s.message.as_deref()).unwrap_or_default();
        let mut row = vec![
            run.name_any(),
            badge(style, phase_of(run)),
            metrics_summary(run),
            age_of(&run.metadata, now),
            truncate(&one_line(message), LIST_MESSAGE_WIDTH),
        ];
        if all_namespaces {
            row.insert(0, run.namespace().unwrap_or_default());
        }
        rows.push(row);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_to_one_line() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly 10", 10), "exactly 10");
        assert_eq!(truncate("a little too long", 10), "a little …");
        assert_eq!(one_line("sum(rate(x[1m]))\n  / sum(rate(y[1m]))\n"), "sum(rate(x[1m])) / sum(rate(y[1m]))");
    }

    #[test]
    fn phases_get_the_icons_of_their_health() {
        let icons = Style { color: false, icons: true };
        assert_eq!(badge(icons, AnalysisPhase::Successful), "✔ Successful");
        assert_eq!(badge(icons, AnalysisPhase::Running), "◌ Running");
        assert_eq!(badge(icons, AnalysisPhase::Failed), "✖ Failed");
        assert_eq!(badge(icons, AnalysisPhase::Error), "⚠ Error");
        assert_eq!(badge(icons, AnalysisPhase::Inconclusive), "? Inconclusive");
        assert_eq!(status_badge(icons, "Inconclusive"), "? Inconclusive");
        assert_eq!(status_badge(icons, "Exploded"), "? Exploded");
    }
}
