//! Pods: evictions for `spec.restartAt`, through the Eviction API so PodDisruptionBudgets apply,
//! and ephemeral labels and annotations as a ReplicaSet's role changes. Nothing else is changed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams, ListParams, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::params;
use crate::api::{POD_TEMPLATE_HASH_LABEL, Rollout};
use crate::context::{Context, Error};
use crate::plan::metadata::MetadataChange;

fn api(ctx: &Context, rollout: &Rollout) -> Api<Pod> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

/// Applies `change` to each pod of `replica_set` that doesn't have it yet.
pub async fn set_metadata(
    ctx: &Context,
    rollout: &Rollout,
    replica_set: &str,
    hash: &str,
    change: &MetadataChange,
) -> Result<(), Error> {
    let api = api(ctx, rollout);
    let pods = api.list(&ListParams::default().labels(&format!("{POD_TEMPLATE_HASH_LABEL}={hash}"))).await?;
    let owned = |pod: &Pod| pod.owner_references().iter().any(|o| o.kind == "ReplicaSet" && o.name == replica_set);
    let patch = Patch::Merge(json!({"metadata": {"labels": change.labels, "annotations": change.annotations}}));
    let up_to_date = |current: &BTreeMap<String, String>, wanted: &BTreeMap<String, Option<String>>| {
        wanted.iter().all(|(key, value)| current.get(key) == value.as_ref())
    };
    for pod in pods.items.iter().filter(|pod| owned(pod) && pod.metadata.deletion_timestamp.is_none()) {
        // A retried plan only patches the pods it had not reached.
        if up_to_date(pod.labels(), &change.labels) && up_to_date(pod.annotations(), &change.annotations) {
            continue;
        }
        match api.patch(&pod.name_any(), &params(), &patch).await {
            // Gone meanwhile: its replacement is made from the template, which has the change.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
            Ok(_) => {}
        }
    }
    Ok(())
}

pub async fn evict(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    match api(ctx, rollout).evict(name, &EvictParams::default()).await {
        // 429: a PodDisruptionBudget protects it now; the restart retries later. 404: already gone.
        Err(kube::Error::Api(status)) if status.code == 429 || status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}
