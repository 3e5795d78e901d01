//! Executes a plan: the actions in order (stopping at the first failure), then one status patch
//! with only what changed, then the Events. Every write is idempotent and uses one field manager.

mod analysis;
mod ingress;
mod istio;
mod pods;
mod replicaset;
mod revision;
mod rollout;
mod route;
mod service;
mod workload;

use kube::api::{Api, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::api::{FIELD_MANAGER, Rollout};
use crate::context::{Context, Error};
use crate::plan::{Action, Observed, Plan};

pub use rollout::{merge_diff, write_unreadable};

fn params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

fn post_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

/// Whether `rollout` is the controller of `object`.
fn controlled_by<K: Resource>(object: &K, rollout: &Rollout) -> bool {
    object
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == rollout.metadata.uid.as_ref())
}

/// Creates an object the Rollout owns; one of that name it controls already (our own create, not
/// yet in the cache) counts as created, one another owner holds is `Error::Taken`.
async fn create_owned<K>(api: &Api<K>, rollout: &Rollout, object: &K, kind: &'static str) -> Result<(), Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    match api.create(&post_params(), object).await {
        Ok(_) => tracing::info!(rollout = %rollout.name_any(), kind, %name, "created"),
        Err(kube::Error::Api(status)) if status.code == 409 => match api.get_opt(&name).await? {
            Some(existing) if controlled_by(&existing, rollout) => {}
            Some(_) => return Err(Error::Taken(kind, name)),
            // Gone since: the next attempt creates it.
            None => return Err(kube::Error::Api(status).into()),
        },
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// A write to an object that is gone (a retried delete, a run deleted meanwhile) has nothing left
/// to do.
fn done_if_gone<T>(result: kube::Result<T>) -> Result<(), Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}

/// Runs `plan` for `observed.rollout`. Returns the Rollout as written, when the status changed.
pub async fn apply(ctx: &Context, observed: &Observed, plan: &Plan) -> Result<Option<Rollout>, Error> {
    let rollout = &observed.rollout;
    for action in &plan.actions {
        let result = match action {
            Action::DefaultReplicas => rollout::default_replicas(ctx, rollout).await,
            Action::AddFinalizer => rollout::add_finalizer(ctx, rollout).await,
            Action::RemoveFinalizer => rollout::remove_finalizer(ctx, rollout).await,
            Action::AnnotateRollout { annotations } => rollout::annotate(ctx, rollout, annotations).await,
            Action::CreateReplicaSet(rs) => replicaset::create(ctx, rollout, rs).await,
            // Its name is the stable's, whatever the collision count: another object holding it
            // is not a reason to rename the current template.
            Action::RecreateReplicaSet(rs) => match replicaset::create(ctx, rollout, rs).await {
                Err(Error::HashCollision(name)) => Err(Error::NameTaken(name)),
                other => other,
            },
            Action::RecordTemplate(record) => revision::record(ctx, rollout, record).await,
            Action::DeleteTemplateRecord { name } => revision::delete(ctx, rollout, name).await,
            Action::AdoptReplicaSet { name } => replicaset::adopt(ctx, rollout, name).await,
            Action::PatchReplicaSet { name, replicas, annotations } => {
                replicaset::patch(ctx, rollout, name, *replicas, annotations).await
            }
            Action::DeleteReplicaSet { name } => replicaset::delete(ctx, rollout, name).await,
            Action::SetServiceSelector { service, hash, changed_at } => {
                service::set_selector(ctx, rollout, service, hash.as_deref(), *changed_at).await
            }
            Action::SetVirtualServiceWeights { namespace, name, patch, canary_weight } => {
                let result = istio::patch(ctx, namespace, name, patch).await;
                if result.is_ok() {
                    tracing::info!(rollout = %rollout.name_any(), virtualservice = %format_args!("{namespace}/{name}"), canary_weight, "traffic moved");
                }
                result
            }
            Action::PatchVirtualService { namespace, name, patch } => {
                let result = istio::patch(ctx, namespace, name, patch).await;
                if result.is_ok() {
                    tracing::info!(rollout = %rollout.name_any(), virtualservice = %format_args!("{namespace}/{name}"), "header routes changed");
                }
                result
            }
            Action::ScaleWorkload { name, replicas } => workload::scale(ctx, rollout, name, *replicas).await,
            Action::EvictPod { name } => pods::evict(ctx, rollout, name).await,
            Action::SetTemplateMetadata { replica_set, change } => {
                replicaset::set_template_metadata(ctx, rollout, replica_set, change).await
            }
            Action::SetPodMetadata { replica_set, hash, change } => {
                pods::set_metadata(ctx, rollout, replica_set, hash, change).await
            }
            Action::CreateIngress(ingress) => ingress::create(ctx, rollout, ingress).await,
            Action::PatchIngress { name, patch, canary_weight } => {
                ingress::patch(ctx, rollout, name, patch, *canary_weight).await
            }
            Action::PatchRoute { kind, namespace, name, patch, canary_weight } => {
                route::patch(ctx, rollout, (*kind, namespace, name), patch, *canary_weight).await
            }
            Action::CreateRoute { kind, object } => route::create(ctx, rollout, *kind, object).await,
            Action::DeleteRoute { kind, namespace, name, uid } => {
                route::delete(ctx, (*kind, namespace, name), uid).await
            }
            Action::CreateAnalysisRun(run) => analysis::create(ctx, rollout, run).await,
            Action::TerminateAnalysisRun { name } => analysis::terminate(ctx, rollout, name).await,
            Action::DeleteAnalysisRun { name } => analysis::delete(ctx, rollout, name).await,
        };
        if let Err(error) = result {
            ctx.metrics.write_failed(action);
            return Err(error);
        }
        ctx.metrics.wrote(action);
        after_write(ctx, Some(action)).await;
    }
    let written = rollout::patch_status(ctx, rollout, &plan.status).await?;
    if written.is_some() {
        after_write(ctx, None).await;
    }
    ctx.events.publish(rollout, &plan.events);
    Ok(written)
}

async fn after_write(ctx: &Context, action: Option<&Action>) {
    if let Some(hook) = &ctx.settings.after_write {
        (hook.0)(action).await;
    }
}
