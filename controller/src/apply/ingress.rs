//! Canary Ingresses (ingress-nginx): created once, then merge-patched where they differ.

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::{create_owned, params};
use crate::api::Rollout;
use crate::context::{Context, Error};

fn api(ctx: &Context, rollout: &Rollout) -> Api<Ingress> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

pub async fn create(ctx: &Context, rollout: &Rollout, ingress: &Ingress) -> Result<(), Error> {
    create_owned(&api(ctx, rollout), rollout, ingress, "Ingress").await
}

pub async fn patch(
    ctx: &Context,
    rollout: &Rollout,
    name: &str,
    patch: &Value,
    canary_weight: i32,
) -> Result<(), Error> {
    api(ctx, rollout).patch(name, &params(), &Patch::Merge(patch)).await?;
    tracing::info!(rollout = %rollout.name_any(), ingress = %name, canary_weight, "traffic moved");
    Ok(())
}
