//! Pod evictions for `spec.restartAt`, through the Eviction API so PodDisruptionBudgets apply.

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, EvictParams};

use crate::api::Rollout;
use crate::reconcile::{Context, Error};

pub async fn evict(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default());
    match api.evict(name, &EvictParams::default()).await {
        // 429: a PodDisruptionBudget protects it now; the restart retries later. 404: already gone.
        Err(kube::Error::Api(status)) if status.code == 429 || status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}
