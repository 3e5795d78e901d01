//! ReplicaSet writes: create (with hash-collision handling), adopt, size and annotate, delete.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DeleteParams, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{controlled_by, done_if_gone, params, post_params};
use crate::api::Rollout;
use crate::context::{Context, Error};
use crate::plan::metadata::MetadataChange;

fn api(ctx: &Context, rollout: &Rollout) -> Api<ReplicaSet> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

pub async fn create(ctx: &Context, rollout: &Rollout, rs: &ReplicaSet) -> Result<(), Error> {
    match api(ctx, rollout).create(&post_params(), rs).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // Ours already (a stale cache), or another object holds the name: a hash collision.
            let existing = api(ctx, rollout).get_opt(&rs.name_any()).await?;
            if existing.as_ref().is_some_and(|existing| controlled_by(existing, rollout)) {
                return Ok(());
            }
            Err(Error::HashCollision(rs.name_any()))
        }
        Err(kube::Error::Api(status)) if status.code == 422 => Err(Error::InvalidTemplate(status.message)),
        Err(error) => Err(error.into()),
    }
}

pub async fn adopt(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    let owner = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": rollout.name_any(),
        "uid": rollout.metadata.uid, "controller": true, "blockOwnerDeletion": true,
    });
    let patch = json!({"metadata": {"ownerReferences": [owner]}});
    api(ctx, rollout).patch(name, &params(), &Patch::Merge(&patch)).await?;
    Ok(())
}

pub async fn patch(
    ctx: &Context,
    rollout: &Rollout,
    name: &str,
    replicas: Option<i32>,
    annotations: &BTreeMap<String, Option<String>>,
) -> Result<(), Error> {
    let mut patch = json!({});
    if let Some(replicas) = replicas {
        patch["spec"] = json!({"replicas": replicas});
    }
    if !annotations.is_empty() {
        patch["metadata"] = json!({"annotations": annotations});
    }
    api(ctx, rollout).patch(name, &params(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Labels and annotations of the pod template (ephemeral metadata): merged in, `None` removes.
pub async fn set_template_metadata(
    ctx: &Context,
    rollout: &Rollout,
    name: &str,
    change: &MetadataChange,
) -> Result<(), Error> {
    let patch =
        json!({"spec": {"template": {"metadata": {"labels": change.labels, "annotations": change.annotations}}}});
    api(ctx, rollout).patch(name, &params(), &Patch::Merge(&patch)).await?;
    Ok(())
}

pub async fn delete(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    done_if_gone(api(ctx, rollout).delete(name, &DeleteParams::background()).await)
}
