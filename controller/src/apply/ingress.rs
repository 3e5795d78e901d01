//! Canary Ingresses (ingress-nginx): created once, then merge-patched where they differ.

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::{controlled_by, params, post_params};
use crate::api::Rollout;
use crate::context::{Context, Error};

fn api(ctx: &Context, rollout: &Rollout) -> Api<Ingress> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

/// Creates the canary Ingress; one this Rollout controls already (our own create, not yet in the
/// cache) counts as created.
pub async fn create(ctx: &Context, rollout: &Rollout, ingress: &Ingress) -> Result<(), Error> {
    let name = ingress.name_any();
    match api(ctx, rollout).create(&post_params(), ingress).await {
        Ok(_) => tracing::info!(rollout = %rollout.name_any(), ingress = %name, "canary ingress created"),
        Err(kube::Error::Api(status)) if status.code == 409 => match api(ctx, rollout).get_opt(&name).await? {
            Some(existing) if controlled_by(&existing, rollout) => {}
            Some(_) => return Err(Error::Taken("Ingress", name)),
            None => return Err(kube::Error::Api(status).into()),
        },
        Err(error) => return Err(error.into()),
    }
    Ok(())
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
