//! Service selectors: point a Service at a pod-template hash, or release it.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::params;
use crate::api::{MANAGED_BY_ANNOTATION, POD_TEMPLATE_HASH_LABEL, Rollout, TRAFFIC_CHANGED_ANNOTATION};
use crate::context::{Context, Error};

/// Points `service` at `hash` and records `changed_at` on it in the same write; `None` releases it.
pub async fn set_selector(
    ctx: &Context,
    rollout: &Rollout,
    service: &str,
    hash: Option<&str>,
    changed_at: Timestamp,
) -> Result<(), Error> {
    let api: Api<Service> =
        Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default());
    let result = match hash {
        Some(hash) => {
            let patch = json!({
                "metadata": {"annotations": {
                    MANAGED_BY_ANNOTATION: rollout.name_any(),
                    TRAFFIC_CHANGED_ANNOTATION: changed_at.to_string(),
                }},
                "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: hash}},
            });
            api.patch(service, &params(), &Patch::Strategic(&patch)).await
        }
        None => {
            let patch = json!({
                "metadata": {"annotations": {MANAGED_BY_ANNOTATION: null, TRAFFIC_CHANGED_ANNOTATION: null}},
                "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: null}},
            });
            api.patch(service, &params(), &Patch::Merge(&patch)).await
        }
    };
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 && hash.is_none() => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}
