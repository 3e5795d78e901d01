//! ControllerRevisions that record each revision's pod template, so a ReplicaSet deleted by hand
//! can be created again.

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::Resource;
use kube::api::{Api, DeleteParams};

use super::{done_if_gone, post_params};
use crate::api::Rollout;
use crate::context::{Context, Error};

fn api(ctx: &Context, rollout: &Rollout) -> Api<ControllerRevision> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

/// Creates the record; one that exists already (a retried plan) is the same template.
pub async fn record(ctx: &Context, rollout: &Rollout, revision: &ControllerRevision) -> Result<(), Error> {
    match api(ctx, rollout).create(&post_params(), revision).await {
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}

pub async fn delete(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    done_if_gone(api(ctx, rollout).delete(name, &DeleteParams::background()).await)
}
