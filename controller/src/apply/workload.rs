//! The referenced Deployment's replicas (`workloadRef.scaleDown`).

use k8s_openapi::api::apps::v1::Deployment;
use kube::Resource;
use kube::api::{Api, Patch};
use serde_json::json;

use super::params;
use crate::api::Rollout;
use crate::context::{Context, Error};

pub async fn scale(ctx: &Context, rollout: &Rollout, name: &str, replicas: i32) -> Result<(), Error> {
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default());
    api.patch(name, &params(), &Patch::Merge(&json!({"spec": {"replicas": replicas}}))).await?;
    Ok(())
}
