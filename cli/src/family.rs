//! Which ReplicaSets and pods belong to a rollout, from what the user was allowed to list.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use rollouts_controller::api::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout};

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

/// A rollout's ReplicaSets (owned by it, carrying the pod-template-hash label) and their pods.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub replica_sets: Visible<ReplicaSet>,
    pub pods: Visible<Pod>,
    /// `metadata.generation` of the workloadRef Deployment, when there is one the user may read.
    pub workload_generation: Option<i64>,
}

fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|owner| owner.uid == owner_uid)
}

/// The ReplicaSets of `rollout` among `candidates`.
pub fn replica_sets_of(rollout: &Rollout, candidates: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let Some(uid) = rollout.metadata.uid.as_deref() else { return Vec::new() };
    candidates
        .iter()
        .filter(|rs| owned_by(&rs.metadata, uid))
        .filter(|rs| rs.metadata.labels.as_ref().is_some_and(|l| l.contains_key(POD_TEMPLATE_HASH_LABEL)))
        .cloned()
        .collect()
}

impl Family {
    /// Picks the rollout's ReplicaSets and their pods out of everything listed in its namespace.
    pub fn of(rollout: &Rollout, replica_sets: Visible<ReplicaSet>, pods: Visible<Pod>) -> Family {
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
        Family { replica_sets, pods, workload_generation: None }
    }
}

/// The `rollouts-pod-template-hash` of a ReplicaSet.
pub fn template_hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata.labels.as_ref()?.get(POD_TEMPLATE_HASH_LABEL).map(String::as_str)
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
    rs.annotations().get(REVISION_ANNOTATION)?.parse().ok()
}
