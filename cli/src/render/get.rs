//! `get NAME`: the summary, then the tree of revisions, ReplicaSets and pods.

use k8s_openapi::jiff::Timestamp;
use rollouts_controller::api::Rollout;

use super::analysis::status_badge;
use super::summary::{PauseState, Summary};
use super::tree::render_tree;
use super::{Style, go_duration, phase_badge};
use crate::family::Family;

/// Label column of the summary: wide enough for `  ActualWeight:`.
pub(super) const LABEL_WIDTH: usize = 17;

pub(super) fn field(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{:<LABEL_WIDTH$}{value}\n", format!("{label}:")));
}

/// `[###-----]`: one cell per step, filled up to the current one (scaled down for long lists).
fn progress_bar(index: usize, total: usize) -> String {
    const MAX_CELLS: usize = 40;
    let cells = total.min(MAX_CELLS);
    let filled = (index.min(total) * cells).checked_div(total).unwrap_or(0);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(cells - filled))
}

fn pause_text(pause: PauseState, name: &str) -> String {
    match pause {
        PauseState::Manual => format!("manually; resume with `kubectl rollouts resume {name}`"),
        PauseState::UntilPromoted => format!("until promoted: `kubectl rollouts promote {name}`"),
        PauseState::Timed { remaining, total } => {
            format!("{} left of {}", go_duration(remaining), go_duration(total))
        }
        PauseState::InconclusiveAnalysis => {
            format!("inconclusive analysis; go on with `kubectl rollouts promote {name}`")
        }
    }
}

/// The summary block of `get`.
fn render_summary(summary: &Summary, style: Style) -> String {
    let mut out = String::new();
    field(&mut out, "Name", &summary.name);
    field(&mut out, "Namespace", &summary.namespace);
    field(&mut out, "Status", &phase_badge(style, &summary.phase));
    if !summary.phase.message.is_empty() {
        field(&mut out, "Message", &summary.phase.message);
    }
    field(&mut out, "Strategy", summary.strategy);
    if let Some((index, total)) = summary.step {
        field(&mut out, "  Step", &format!("{index}/{total} {}", progress_bar(index, total)));
    }
    if let Some(pause) = summary.pause {
        field(&mut out, "  Paused", &pause_text(pause, &summary.name));
    }
    field(&mut out, "  SetWeight", &summary.set_weight.to_string());
    let actual = summary.actual_weight.map_or_else(|| "-".to_string(), |w| w.to_string());
    field(&mut out, "  ActualWeight", &actual);
    if !summary.analysis.is_empty() {
        out.push_str("Analysis:\n");
        let width = summary.analysis.iter().map(|(_, run)| run.name.chars().count()).max().unwrap_or(0);
        for (kind, run) in &summary.analysis {
            let line = format!("{:<width$}  {}", run.name, status_badge(style, &run.status));
            field(&mut out, &format!("  {kind}"), &line);
        }
    }
    match &summary.images {
        None => field(&mut out, "Images", "- (needs permission to list replicasets)"),
        Some(images) if images.is_empty() => field(&mut out, "Images", "-"),
        Some(images) => {
            for (position, (image, tags)) in images.iter().enumerate() {
                let label = if position == 0 { "Images" } else { "" };
                let line = format!("{image} ({})", tags.join(", "));
                if label.is_empty() {
                    out.push_str(&format!("{:LABEL_WIDTH$}{line}\n", ""));
                } else {
                    field(&mut out, label, &line);
                }
            }
        }
    }
    let counts = summary.replicas;
    out.push_str("Replicas:\n");
    field(&mut out, "  Desired", &counts.desired.to_string());
    field(&mut out, "  Current", &counts.current.to_string());
    field(&mut out, "  Updated", &counts.updated.to_string());
    field(&mut out, "  Ready", &counts.ready.to_string());
    field(&mut out, "  Available", &counts.available.to_string());
    out
}

/// Everything `get NAME` prints.
pub fn render_get(rollout: &Rollout, family: &Family, now: Timestamp, style: Style) -> String {
    let summary = Summary::of(rollout, family.replica_sets.items(), family.workload_generation, now);
    format!("{}\n{}", render_summary(&summary, style), render_tree(rollout, &summary, family, now, style))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_fills_one_cell_per_step() {
        assert_eq!(progress_bar(0, 4), "[----]");
        assert_eq!(progress_bar(1, 4), "[#---]");
        assert_eq!(progress_bar(4, 4), "[####]");
        assert_eq!(progress_bar(50, 100), format!("[{}{}]", "#".repeat(20), "-".repeat(20)));
    }
}
