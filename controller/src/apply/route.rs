//! The routers' custom resources (ApisixRoutes, HTTPRoutes, GRPCRoutes) through the dynamic API:
//! guarded JSON Patches, and the header routes' own objects.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::{create_owned, params};
use crate::api::{Rollout, RouteKind};
use crate::context::{Context, Error};

fn api(ctx: &Context, kind: RouteKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &kind.api_resource())
}

pub async fn patch(
    ctx: &Context,
    rollout: &Rollout,
    (kind, namespace, name): (RouteKind, &str, &str),
    operations: &[Value],
    canary_weight: Option<i32>,
) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(operations.to_vec()))?;
    api(ctx, kind, namespace).patch(name, &params(), &Patch::Json::<()>(patch)).await?;
    let object = format!("{}/{namespace}/{name}", kind.gvk().2);
    match canary_weight {
        Some(canary_weight) => tracing::info!(rollout = %rollout.name_any(), %object, canary_weight, "traffic moved"),
        None => tracing::info!(rollout = %rollout.name_any(), %object, "routes changed"),
    }
    Ok(())
}

pub async fn create(ctx: &Context, rollout: &Rollout, kind: RouteKind, object: &DynamicObject) -> Result<(), Error> {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    create_owned(&api(ctx, kind, &namespace), rollout, object, kind.gvk().2).await
}

/// Deletes the object with `uid`; gone already counts as deleted.
pub async fn delete(ctx: &Context, (kind, namespace, name): (RouteKind, &str, &str), uid: &str) -> Result<(), Error> {
    let precondition = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..DeleteParams::default()
    };
    match api(ctx, kind, namespace).delete(name, &precondition).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}
