//! Writes to the Rollout itself: defaults, the finalizer, the revision annotation and status.

use std::collections::BTreeMap;

use kube::api::{Api, Patch};
use kube::core::DynamicObject;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};

use super::params;
use crate::api::{FINALIZER, Rollout, RolloutStatus};
use crate::context::{Context, Error};

fn api(ctx: &Context, rollout: &Rollout) -> Api<Rollout> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

pub async fn default_replicas(ctx: &Context, rollout: &Rollout) -> Result<(), Error> {
    let patch = json!({"spec": {"replicas": 1}});
    api(ctx, rollout).patch(&rollout.name_any(), &params(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Finalizer edits are guarded by the resourceVersion, so a concurrent change is never lost.
async fn set_finalizers(ctx: &Context, rollout: &Rollout, finalizers: Vec<String>) -> Result<(), Error> {
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rollout.resource_version()},
        {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    api(ctx, rollout).patch(&rollout.name_any(), &params(), &Patch::Json::<()>(patch)).await?;
    Ok(())
}

pub async fn add_finalizer(ctx: &Context, rollout: &Rollout) -> Result<(), Error> {
    let mut finalizers = rollout.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    set_finalizers(ctx, rollout, finalizers).await
}

pub async fn remove_finalizer(ctx: &Context, rollout: &Rollout) -> Result<(), Error> {
    let finalizers = rollout.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    match set_finalizers(ctx, rollout, finalizers).await {
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => Ok(()),
        other => other,
    }
}

pub async fn annotate(
    ctx: &Context,
    rollout: &Rollout,
    annotations: &BTreeMap<String, Option<String>>,
) -> Result<(), Error> {
    let patch = json!({"metadata": {"annotations": annotations}});
    api(ctx, rollout).patch(&rollout.name_any(), &params(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// The JSON merge patch (RFC 7396) that turns `before` into `after`; `None` when equal.
pub fn merge_diff(before: &Value, after: &Value) -> Option<Value> {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) => {
                        if let Some(change) = merge_diff(previous, value) {
                            patch.insert(key.clone(), change);
                        }
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                patch.insert(key.clone(), Value::Null);
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        _ if before == after => None,
        _ => Some(after.clone()),
    }
}

/// Patches `/status` with only the fields that changed, so fields a person set meanwhile
/// (abort, promoteFull, cleared pause conditions) are never written back.
pub async fn patch_status(ctx: &Context, rollout: &Rollout, status: &RolloutStatus) -> Result<Option<Rollout>, Error> {
    let before = serde_json::to_value(rollout.status.clone().unwrap_or_default())?;
    let after = serde_json::to_value(status)?;
    let Some(diff) = merge_diff(&before, &after) else { return Ok(None) };
    let patch = json!({"status": diff});
    let written = api(ctx, rollout).patch_status(&rollout.name_any(), &params(), &Patch::Merge(&patch)).await?;
    ctx.metrics.wrote_status();
    Ok(Some(written))
}

/// The status of a Rollout that can't even be read (see `plan::unreadable`), written without
/// reading the object.
pub async fn write_unreadable(ctx: &Context, namespace: &str, name: &str, status: &RolloutStatus) -> Result<(), Error> {
    let patch = json!({"status": status});
    let resource = kube::api::ApiResource::erase::<Rollout>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    api.patch_status(name, &params(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_sends_only_changes_and_nulls_removals() {
        let before = json!({"phase": "Paused", "abort": true, "pauseConditions": [{"reason": "x"}], "canary": {"weights": {"a": 1}}});
        let after = json!({"phase": "Progressing", "abort": true, "canary": {"weights": {"a": 1}}});
        assert_eq!(merge_diff(&before, &after), Some(json!({"phase": "Progressing", "pauseConditions": null})));
        assert_eq!(merge_diff(&after, &after), None);
        assert_eq!(
            merge_diff(&json!({"a": {"b": 1}}), &json!({"a": {"b": 2, "c": 3}})),
            Some(json!({"a": {"b": 2, "c": 3}}))
        );
    }
}
