//! AnalysisRuns a Rollout starts, stops and clears away.

use kube::api::{Api, DeleteParams, Patch};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{create_owned, done_if_gone, params};
use crate::api::{AnalysisRun, Rollout};
use crate::context::{Context, Error};

fn api(ctx: &Context, rollout: &Rollout) -> Api<AnalysisRun> {
    Api::namespaced(ctx.client.clone(), rollout.meta().namespace.as_deref().unwrap_or_default())
}

pub async fn create(ctx: &Context, rollout: &Rollout, run: &AnalysisRun) -> Result<(), Error> {
    create_owned(&api(ctx, rollout), rollout, run, "AnalysisRun").await
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
