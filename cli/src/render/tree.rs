//! The tree of `get`: rollout → revisions → ReplicaSets → pods, and AnalysisRuns → metrics.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use rollouts_controller::api::{AnalysisRun, Rollout, SCALE_DOWN_DEADLINE_ANNOTATION};

use super::summary::Summary;
use super::tree_runs::run_rows;
use super::{Health, Style, age_of, go_duration, phase_badge, table};
use crate::family::{Family, Visible, revision_of, run_revision, tag_of};

pub(super) struct Row {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) status: String,
    pub(super) age: String,
    pub(super) info: String,
}

/// Tree drawing: the connector before a node and the indent under it.
pub(super) fn branch(last: bool) -> (&'static str, &'static str) {
    if last { ("└──", "   ") } else { ("├──", "│  ") }
}

/// What a revision holds: its ReplicaSets (by name), then its runs (newest first).
#[derive(Default)]
struct Members<'a> {
    replica_sets: Vec<&'a ReplicaSet>,
    runs: Vec<&'a AnalysisRun>,
}

/// Newest revision first, like `kubectl rollout history` read from the top.
fn by_revision<'a>(
    replica_sets: &'a [ReplicaSet],
    runs: &'a [AnalysisRun],
) -> BTreeMap<Reverse<Option<u64>>, Members<'a>> {
    let mut revisions: BTreeMap<Reverse<Option<u64>>, Members> = BTreeMap::new();
    for rs in replica_sets {
        revisions.entry(Reverse(revision_of(rs))).or_default().replica_sets.push(rs);
    }
    for run in runs {
        revisions.entry(Reverse(run_revision(run, replica_sets))).or_default().runs.push(run);
    }
    for members in revisions.values_mut() {
        members.replica_sets.sort_by_key(|rs| rs.name_any());
        members.runs.sort_by_key(|run| Reverse((run.metadata.creation_timestamp.clone(), run.name_any())));
    }
    revisions
}

pub fn render_tree(rollout: &Rollout, summary: &Summary, family: &Family, now: Timestamp, style: Style) -> String {
    let namespace = &summary.namespace;
    let Some(replica_sets) = family.replica_sets.items() else {
        return format!(
            "(tree not shown: it needs permission to list replicasets and pods in namespace \"{namespace}\")\n"
        );
    };
    let mut rows = vec![Row {
        name: if style.icons { format!("⟳ {}", summary.name) } else { summary.name.clone() },
        kind: "Rollout",
        status: phase_badge(style, &summary.phase),
        age: age_of(&rollout.metadata, now),
        info: String::new(),
    }];
    let revisions = by_revision(replica_sets, family.analysis_runs.items().unwrap_or_default());
    let pods = family.pods.items().unwrap_or_default();
    let revision_count = revisions.len();
    for (position, (Reverse(revision), members)) in revisions.into_iter().enumerate() {
        let (connector, indent) = branch(position + 1 == revision_count);
        let revision = revision.map_or_else(|| "?".to_string(), |r| r.to_string());
        rows.push(Row {
            name: format!("{connector}{}revision:{revision}", style.node_icon("#")),
            kind: "",
            status: String::new(),
            age: String::new(),
            info: String::new(),
        });
        let children = members.replica_sets.len() + members.runs.len();
        for (rs_position, rs) in members.replica_sets.iter().enumerate() {
            let (rs_connector, rs_indent) = branch(rs_position + 1 == children);
            rows.push(replica_set_row(rollout, rs, &format!("{indent}{rs_connector}"), now, style));
            let uid = rs.metadata.uid.as_deref();
            let mut own_pods: Vec<&Pod> = pods
                .iter()
                .filter(|pod| pod.metadata.owner_references.iter().flatten().any(|o| Some(o.uid.as_str()) == uid))
                .collect();
            own_pods.sort_by_key(|pod| pod.name_any());
            for (pod_position, pod) in own_pods.iter().enumerate() {
                let (pod_connector, _) = branch(pod_position + 1 == own_pods.len());
                rows.push(pod_row(pod, &format!("{indent}{rs_indent}{pod_connector}"), now, style));
            }
        }
        for (run_position, run) in members.runs.iter().enumerate() {
            rows.extend(run_rows(run, indent, run_position + 1 == members.runs.len(), now, style));
        }
    }
    let mut cells = vec![["NAME", "KIND", "STATUS", "AGE", "INFO"].map(String::from).to_vec()];
    cells.extend(rows.into_iter().map(|row| vec![row.name, row.kind.to_string(), row.status, row.age, row.info]));
    let mut out = table(&cells);
    if family.pods == Visible::Forbidden {
        out.push_str(&format!("(pods not shown: they need permission to list pods in namespace \"{namespace}\")\n"));
    }
    if family.analysis_runs == Visible::Forbidden {
        out.push_str(&format!(
            "(analysis runs not shown: they need permission to list analysisruns in namespace \"{namespace}\")\n"
        ));
    }
    out
}

fn replica_set_row(rollout: &Rollout, rs: &ReplicaSet, prefix: &str, now: Timestamp, style: Style) -> Row {
    let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = rs.status.clone().unwrap_or_default();
    let failed = status.conditions.iter().flatten().any(|c| c.type_ == "ReplicaFailure" && c.status == "True");
    let (health, text) = if failed {
        (Health::Error, "ReplicaFailure")
    } else if desired == 0 && status.replicas == 0 {
        (Health::ScaledDown, "ScaledDown")
    } else if status.replicas == desired
        && status.ready_replicas.unwrap_or(0) >= desired
        && status.available_replicas.unwrap_or(0) >= desired
    {
        (Health::Healthy, "Healthy")
    } else {
        (Health::Progressing, "Progressing")
    };
    let mut info = vec![tag_of(rollout, rs).to_string()];
    // An old ReplicaSet kept up for a while after traffic left it (traffic routing).
    let deadline = rs.annotations().get(SCALE_DOWN_DEADLINE_ANNOTATION).and_then(|d| d.parse::<Timestamp>().ok());
    if let Some(deadline) = deadline.filter(|_| desired > 0) {
        let left = deadline.as_second() - now.as_second();
        info.push(if left > 0 { format!("delay:{}", go_duration(left.unsigned_abs())) } else { "delay:passed".into() });
    }
    Row {
        name: format!("{prefix}{}{}", style.node_icon("⧉"), rs.name_any()),
        kind: "ReplicaSet",
        status: style.badge(health, text),
        age: age_of(&rs.metadata, now),
        info: info.join(","),
    }
}

/// What a pod is doing, the way kubectl's STATUS column says it.
fn pod_state(pod: &Pod) -> (Health, String) {
    if pod.metadata.deletion_timestamp.is_some() {
        return (Health::Progressing, "Terminating".into());
    }
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.unwrap_or_default();
    for container in &containers {
        let state = container.state.clone().unwrap_or_default();
        if let Some(reason) = state.waiting.and_then(|w| w.reason) {
            let broken = ["CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"];
            let health = if broken.contains(&reason.as_str()) { Health::Error } else { Health::Progressing };
            return (health, reason);
        }
        if let Some(reason) = state.terminated.and_then(|t| t.reason).filter(|r| r != "Completed") {
            return (Health::Degraded, reason);
        }
    }
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    match status.phase.as_deref() {
        Some("Running") if all_ready => (Health::Healthy, "Running".into()),
        Some("Running") => (Health::Progressing, "Running".into()),
        Some("Pending") => (Health::Progressing, "Pending".into()),
        Some("Succeeded") => (Health::Healthy, "Completed".into()),
        Some("Failed") => (Health::Degraded, status.reason.unwrap_or_else(|| "Failed".into())),
        _ => (Health::Unknown, "Unknown".into()),
    }
}

fn pod_row(pod: &Pod, prefix: &str, now: Timestamp, style: Style) -> Row {
    let (health, text) = pod_state(pod);
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let total = pod.spec.as_ref().map_or(statuses.len(), |spec| spec.containers.len());
    let ready = statuses.iter().filter(|c| c.ready).count();
    let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
    let mut info = format!("ready:{ready}/{total}");
    if restarts > 0 {
        info.push_str(&format!(",restarts:{restarts}"));
    }
    Row {
        name: format!("{prefix}{}{}", style.node_icon("□"), pod.name_any()),
        kind: "Pod",
        status: style.badge(health, &text),
        age: age_of(&pod.metadata, now),
        info,
    }
}
