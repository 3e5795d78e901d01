//! `undo`: put the pod template of an earlier revision back.

use anyhow::Result;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Patch, PatchParams};

use super::print;
use super::set_image::template_owner;
use crate::client::{Cluster, Verb, explain};
use crate::family::{Visible, replica_sets_of};
use crate::patches;

/// A template as the typed API writes it, so it compares equal to a ReplicaSet's.
fn normalized(raw: &serde_json::Value) -> Option<serde_json::Value> {
    let typed: PodTemplateSpec = serde_json::from_value(raw.clone()).ok()?;
    serde_json::to_value(typed).ok()
}

/// `to_revision` 0 means the revision before the newest.
pub async fn undo(cluster: &Cluster, name: &str, to_revision: u64) -> Result<()> {
    let rollout = cluster.rollout(name).await?;
    let owner = template_owner(&rollout, name, "undo")?;
    let listed = crate::client::list_visible::<ReplicaSet>(&cluster.client, Some(&cluster.namespace), "replicasets");
    let all = match listed.await? {
        Visible::Items(all) => all,
        Visible::Forbidden => anyhow::bail!(
            "forbidden: you can't list replicasets in namespace \"{}\"; undo needs them to find revision templates",
            cluster.namespace
        ),
    };
    let replica_sets = replica_sets_of(&rollout, &all);
    let (revision, target) = patches::rollback_target(name, &replica_sets, to_revision)?;
    let template = patches::template_of(target)?;
    let api = owner.api(cluster);
    let failed = |error, verb| explain(error, cluster.request(verb, owner.resource, Some(&owner.name)));
    let current = api.get(&owner.name).await.map_err(|e| failed(e, Verb::Get))?;
    let current_template = current.data.pointer("/spec/template").and_then(normalized);
    if patches::already_at(&rollout, current_template.as_ref(), target, &template) {
        return print(&format!("skipped rollback (current template already matches revision {revision})\n"));
    }
    let patch: json_patch::Patch = serde_json::from_value(patches::rollback(template))?;
    api.patch(&owner.name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| failed(e, Verb::Patch))?;
    print(&format!("rollout '{name}' rolled back to revision {revision}\n"))
}
