//! AnalysisRuns a Rollout starts, stops and clears away.

use kube::api::{Api, DeleteParams, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{controlled_by, done_if_gone, params, post_params};
use crate::api::{AnalysisRun, Rollout};
use crate::context::{Context, Error};

fn api(ctx: &Context, rollout: &Rollout) -> Api<AnalysisRun> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

/// Creates the run; one of that name that this Rollout controls already (our own create, not yet
/// in the cache) counts as created.
pub async fn create(ctx: &Context, rollout: &Rollout, run: &AnalysisRun) -> Result<(), Error> {
    let name = run.name_any();
    match api(ctx, rollout).create(&post_params(), run).await {
        Ok(_) => tracing::info!(rollout = %rollout.name_any(), analysisrun = %name, "analysis run created"),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            match api(ctx, rollout).get_opt(&name).await? {
                Some(existing) if controlled_by(&existing, rollout) => {}
                Some(_) => return Err(Error::Taken("AnalysisRun", name)),
                // Gone since: the next attempt creates it.
                None => return Err(kube::Error::Api(status).into()),
            }
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// Stops the run (its measurements in flight end Inconclusive); a run that is gone is stopped.
pub async fn terminate(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    let patch = json!({"spec": {"terminate": true}});
    done_if_gone(api(ctx, rollout).patch(name, &params(), &Patch::Merge(&patch)).await)?;
    tracing::info!(rollout = %rollout.name_any(), analysisrun = %name, "analysis run terminated");
    Ok(())
}

/// Deletes the run, and in the background the Jobs it owns.
pub async fn delete(ctx: &Context, rollout: &Rollout, name: &str) -> Result<(), Error> {
    done_if_gone(api(ctx, rollout).delete(name, &DeleteParams::background()).await)?;
    tracing::info!(rollout = %rollout.name_any(), analysisrun = %name, "analysis run deleted");
    Ok(())
}
