//! promote, pause, resume, abort, retry, restart: merge patches of the Rollout or its status.

use anyhow::Result;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use rollouts_controller::api::Rollout;
use serde_json::Value;

use super::print;
use crate::client::{Cluster, Object, Verb, explain, resource_of, retry_on_conflict, status_code};
use crate::patches;
use crate::render::go_duration;

/// Which part of the object a merge patch goes to.
#[derive(Clone, Copy)]
pub(super) enum Part {
    Spec,
    Status,
}

impl Cluster {
    /// A merge patch of one object (a Rollout; an AnalysisRun for `terminate`), retried on conflict.
    pub(super) async fn merge_patch<K: Object>(&self, name: &str, part: Part, body: &Value) -> Result<()> {
        let api = self.api::<K>();
        let params = PatchParams::default();
        let patch = Patch::Merge(body);
        let sent = retry_on_conflict(|| async {
            match part {
                Part::Spec => api.patch(name, &params, &patch).await,
                Part::Status => api.patch_status(name, &params, &patch).await,
            }
        })
        .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) => {
                if status_code(&error) == Some(404) {
                    // A missing object is reported the way `get` does, with a suggestion.
                    self.get::<K>(name).await?;
                }
                Err(explain(error, self.request(Verb::Patch, &resource_of::<K>(), Some(name))))
            }
        }
    }

    async fn send(&self, name: &str, promotion: patches::Promotion) -> Result<()> {
        if let Some(status) = &promotion.status {
            self.merge_patch::<Rollout>(name, Part::Status, status).await?;
        }
        if let Some(spec) = &promotion.spec {
            self.merge_patch::<Rollout>(name, Part::Spec, spec).await?;
        }
        Ok(())
    }
}

pub async fn promote(cluster: &Cluster, name: &str, full: bool) -> Result<()> {
    let rollout = cluster.rollout(name).await?;
    if full {
        cluster.send(name, patches::promote_full(&rollout)).await?;
        print(&format!("rollout '{name}' fully promoted\n"))
    } else {
        cluster.send(name, patches::promote(&rollout)).await?;
        print(&format!("rollout '{name}' promoted\n"))
    }
}

pub async fn pause(cluster: &Cluster, name: &str) -> Result<()> {
    cluster.merge_patch::<Rollout>(name, Part::Spec, &patches::pause()).await?;
    print(&format!("rollout '{name}' paused\n"))
}

pub async fn resume(cluster: &Cluster, name: &str) -> Result<()> {
    cluster.merge_patch::<Rollout>(name, Part::Spec, &patches::resume()).await?;
    print(&format!("rollout '{name}' resumed\n"))
}

pub async fn abort(cluster: &Cluster, name: &str) -> Result<()> {
    cluster.merge_patch::<Rollout>(name, Part::Status, &patches::abort()).await?;
    print(&format!("rollout '{name}' aborted\n"))
}

pub async fn retry(cluster: &Cluster, name: &str) -> Result<()> {
    cluster.merge_patch::<Rollout>(name, Part::Status, &patches::retry()).await?;
    print(&format!("rollout '{name}' retried\n"))
}

pub async fn restart(cluster: &Cluster, name: &str, delay_seconds: u64) -> Result<()> {
    let patch = patches::restart(Timestamp::now(), delay_seconds)?;
    cluster.merge_patch::<Rollout>(name, Part::Spec, &patch).await?;
    print(&format!("rollout '{name}' restarts in {}\n", go_duration(delay_seconds)))
}
