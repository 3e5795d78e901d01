//! `list`: one line per rollout.

use super::summary::Summary;
use super::{Style, phase_badge, table};

pub fn render_list(summaries: &[Summary], all_namespaces: bool, style: Style) -> String {
    let mut header = vec![
        "NAME",
        "STRATEGY",
        "STATUS",
        "STEP",
        "SET-WEIGHT",
        "ACTUAL-WEIGHT",
        "READY",
        "DESIRED",
        "UP-TO-DATE",
        "AVAILABLE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for summary in summaries {
        let counts = summary.replicas;
        let mut row = vec![
            summary.name.clone(),
            summary.strategy.to_string(),
            phase_badge(style, &summary.phase),
            summary.step.map_or_else(|| "-".to_string(), |(index, total)| format!("{index}/{total}")),
            summary.set_weight.to_string(),
            summary.actual_weight.map_or_else(|| "-".to_string(), |w| w.to_string()),
            format!("{}/{}", counts.ready, counts.current),
            counts.desired.to_string(),
            counts.updated.to_string(),
            counts.available.to_string(),
        ];
        if all_namespaces {
            row.insert(0, summary.namespace.clone());
        }
        rows.push(row);
    }
    table(&rows)
}
