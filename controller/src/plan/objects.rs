//! The objects a plan creates: a revision's ReplicaSet and the record of its pod template, owned
//! by the Rollout.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;

use super::metadata;
use super::rollout_name;
use crate::api::{
    DESIRED_REPLICAS_ANNOTATION, EPHEMERAL_METADATA_ANNOTATION, POD_TEMPLATE_HASH_LABEL, PodMetadata,
    REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, Rollout, WORKLOAD_GENERATION_ANNOTATION,
};

/// The Rollout as the controlling owner of what it creates.
pub(super) fn owner(rollout: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: rollout_name(rollout).into(),
        uid: rollout.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `rollout` is the controller of the object with `metadata` (we never take over
/// someone else's object).
pub(super) fn controlled_by(metadata: &ObjectMeta, rollout: &Rollout) -> bool {
    let uid = rollout.metadata.uid.as_deref();
    (metadata.owner_references.iter().flatten()).any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// The record of a revision's pod template, named like its ReplicaSet.
pub(super) fn template_record(
    rollout: &Rollout,
    template: &PodTemplateSpec,
    hash: &str,
    revision: u64,
) -> ControllerRevision {
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", rollout_name(rollout))),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some([(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string())].into()),
            owner_references: Some(vec![owner(rollout)]),
            ..Default::default()
        },
        data: serde_json::to_value(template).ok().map(RawExtension),
        revision: i64::try_from(revision).unwrap_or(i64::MAX),
    }
}

/// The ReplicaSet for a pod template, owned by the Rollout, its pods carrying `ephemeral`.
#[allow(clippy::too_many_arguments)]
pub(super) fn new_replica_set(
    rollout: &Rollout,
    template: &PodTemplateSpec,
    selector: &LabelSelector,
    hash: &str,
    revision: u64,
    replicas: i32,
    rollout_replicas: i32,
    ephemeral: &PodMetadata,
) -> ReplicaSet {
    let name = rollout_name(rollout);
    let mut template = template.clone();
    let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    // The ReplicaSet's own labels are the template's, without the ephemeral ones.
    let mut labels = template_meta.labels.clone().unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    let template_labels = template_meta.labels.get_or_insert_with(BTreeMap::new);
    template_labels.extend(ephemeral.labels.clone().unwrap_or_default());
    template_labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    if let Some(extra) = &ephemeral.annotations {
        template_meta.annotations.get_or_insert_with(BTreeMap::new).extend(extra.clone());
    }
    let labels = Some(labels);
    let mut selector = selector.clone();
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    // The Rollout's own annotations travel with the ReplicaSet, except bookkeeping ones.
    let skipped = [
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        WORKLOAD_GENERATION_ANNOTATION,
    ];
    let mut annotations: BTreeMap<String, String> = rollout
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !skipped.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION_ANNOTATION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS_ANNOTATION.into(), rollout_replicas.to_string());
    if let Some(record) = metadata::record(ephemeral) {
        annotations.insert(EPHEMERAL_METADATA_ANNOTATION.into(), record);
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: rollout.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner(rollout)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: rollout.spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}
