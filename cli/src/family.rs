//! Which ReplicaSets, pods and AnalysisRuns belong to a rollout, from what the user was allowed
//! to list.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use rollouts_controller::api::{AnalysisRun, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout};

/// A list the user may or may not be allowed to read: `get` shows what it can.
#[derive(Clone, Debug, PartialEq)]
pub enum Visible<T> {
    Items(Vec<T>),
    Forbidden,
}

impl<T> Visible<T> {
    pub fn items(&self) -> Option<&[T]> {
        match self {
            Visible::Items(items) => Some(items),
            Visible::Forbidden => None,
        }
    }
}

/// A rollout's ReplicaSets and AnalysisRuns (owned by it, carrying the pod-template-hash label)
/// and the ReplicaSets' pods.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub replica_sets: Visible<ReplicaSet>,
    pub pods: Visible<Pod>,
    pub analysis_runs: Visible<AnalysisRun>,
    /// `metadata.generation` of the workloadRef Deployment, when there is one the user may read.
    pub workload_generation: Option<i64>,
}

fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|owner| owner.uid == owner_uid)
}

/// The objects among `candidates` that `rollout` owns and that name a pod template.
fn owned_with_hash<K: Resource + Clone>(rollout: &Rollout, candidates: &[K]) -> Vec<K> {
    let Some(uid) = rollout.metadata.uid.as_deref() else { return Vec::new() };
    candidates
        .iter()
        .filter(|object| owned_by(object.meta(), uid) && hash_label(object.meta()).is_some())
        .cloned()
        .collect()
}

/// The ReplicaSets of `rollout` among `candidates`.
pub fn replica_sets_of(rollout: &Rollout, candidates: &[ReplicaSet]) -> Vec<ReplicaSet> {
    owned_with_hash(rollout, candidates)
}

/// The label selector that narrows a listing of AnalysisRuns to those the controller may have
/// started for `rollout`: they name a pod template and carry the selector's matchLabels.
pub fn analysis_run_selector(rollout: &Rollout) -> String {
    let match_labels = rollout.spec.selector.as_ref().and_then(|s| s.match_labels.as_ref());
    let mut selector = vec![POD_TEMPLATE_HASH_LABEL.to_string()];
    selector.extend(match_labels.into_iter().flatten().map(|(key, value)| format!("{key}={value}")));
    selector.join(",")
}

impl Family {
    /// Picks the rollout's ReplicaSets, their pods and the rollout's AnalysisRuns out of
    /// everything listed in its namespace.
    pub fn of(
        rollout: &Rollout,
        replica_sets: Visible<ReplicaSet>,
        pods: Visible<Pod>,
        analysis_runs: Visible<AnalysisRun>,
    ) -> Family {
        let replica_sets = match replica_sets {
            Visible::Items(all) => Visible::Items(replica_sets_of(rollout, &all)),
            Visible::Forbidden => Visible::Forbidden,
        };
        let owner_uids: Vec<&str> =
            replica_sets.items().unwrap_or_default().iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
        let pods = match pods {
            Visible::Items(all) => Visible::Items(
                all.into_iter().filter(|pod| owner_uids.iter().any(|uid| owned_by(&pod.metadata, uid))).collect(),
            ),
            Visible::Forbidden => Visible::Forbidden,
        };
        let analysis_runs = match analysis_runs {
            Visible::Items(all) => Visible::Items(owned_with_hash(rollout, &all)),
            Visible::Forbidden => Visible::Forbidden,
        };
        Family { replica_sets, pods, analysis_runs, workload_generation: None }
    }
}

fn hash_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels.as_ref()?.get(POD_TEMPLATE_HASH_LABEL).map(String::as_str)
}

/// The `rollouts-pod-template-hash` of a ReplicaSet.
pub fn template_hash(rs: &ReplicaSet) -> Option<&str> {
    hash_label(&rs.metadata)
}

/// How a ReplicaSet relates to the rollout.
pub fn tag_of(rollout: &Rollout, rs: &ReplicaSet) -> &'static str {
    let status = rollout.status.as_ref();
    let hash = template_hash(rs);
    if hash.is_some() && hash == status.and_then(|s| s.stable_rs.as_deref()) {
        "stable"
    } else if hash.is_some() && hash == status.and_then(|s| s.current_pod_hash.as_deref()) {
        "canary"
    } else {
        "old"
    }
}

pub fn revision_of(rs: &ReplicaSet) -> Option<u64> {
    revision_annotation(&rs.metadata)
}

fn revision_annotation(meta: &ObjectMeta) -> Option<u64> {
    meta.annotations.as_ref()?.get(REVISION_ANNOTATION)?.parse().ok()
}

/// The revision a run belongs to: that of the ReplicaSet of its pod template, or else (that
/// ReplicaSet deleted) the revision the run was started at.
pub fn run_revision(run: &AnalysisRun, replica_sets: &[ReplicaSet]) -> Option<u64> {
    let hash = hash_label(&run.metadata);
    replica_sets
        .iter()
        .find(|rs| hash.is_some() && template_hash(rs) == hash)
        .and_then(revision_of)
        .or_else(|| revision_annotation(&run.metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(selector: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"selector": selector, "strategy": {}}
        }))
        .expect("fixture parses")
    }

    #[test]
    fn runs_are_listed_by_the_hash_label_and_the_selector_s_match_labels() {
        let selected = rollout(json!({"matchLabels": {"app": "web", "tier": "front"}}));
        assert_eq!(analysis_run_selector(&selected), "rollouts-pod-template-hash,app=web,tier=front");
        let by_expression = rollout(json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}));
        assert_eq!(analysis_run_selector(&by_expression), "rollouts-pod-template-hash");
    }

    fn meta(hash: &str, revision: u64) -> ObjectMeta {
        ObjectMeta {
            labels: Some([(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string())].into()),
            annotations: Some([(REVISION_ANNOTATION.to_string(), revision.to_string())].into()),
            ..Default::default()
        }
    }

    fn replica_set(hash: &str, revision: u64) -> ReplicaSet {
        ReplicaSet { metadata: meta(hash, revision), ..Default::default() }
    }

    fn run(hash: &str, revision: u64) -> AnalysisRun {
        AnalysisRun { metadata: meta(hash, revision), ..AnalysisRun::new("run", Default::default()) }
    }

    #[test]
    fn a_run_belongs_to_the_revision_of_its_template_s_replica_set() {
        // The ReplicaSet was re-used by a rollback: its revision moved on, its runs follow it.
        let replica_sets = [replica_set("abc", 5), replica_set("def", 4)];
        assert_eq!(run_revision(&run("abc", 2), &replica_sets), Some(5));
        // Its ReplicaSet is gone: the revision the run was started at.
        assert_eq!(run_revision(&run("xyz", 1), &replica_sets), Some(1));
    }
}
