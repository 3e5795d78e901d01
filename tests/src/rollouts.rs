//! Reading Rollouts and their ReplicaSets in e2e tests.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use rollouts_controller::api::{POD_TEMPLATE_HASH_LABEL, Rollout, RolloutStatus};
use serde_json::Value;

use crate::TestNamespace;

/// How long a rollout step may take in tests.
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

pub fn status(rollout: &Rollout) -> RolloutStatus {
    rollout.status.clone().unwrap_or_default()
}

pub fn phase(rollout: &Rollout) -> String {
    status(rollout).phase.unwrap_or_default()
}

/// (desired, available) pods of one ReplicaSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pods {
    pub desired: i32,
    pub available: i32,
}

impl TestNamespace {
    pub async fn rollout(&self, name: &str) -> Result<Rollout> {
        Ok(self.api::<Rollout>().get(name).await?)
    }

    /// Waits until the Rollout satisfies `done`.
    pub async fn wait_rollout(&self, name: &str, what: &str, done: impl Fn(&Rollout) -> bool) -> Result<Rollout> {
        self.wait_for::<Rollout>(name, what, ROLLOUT_TIMEOUT, done).await
    }

    /// Waits for a phase, and for the controller to have seen the latest spec.
    pub async fn wait_phase(&self, name: &str, wanted: &str) -> Result<Rollout> {
        self.wait_rollout(name, &format!("phase {wanted}"), |r| {
            let observed = status(r).observed_generation;
            phase(r) == wanted && observed == r.metadata.generation.map(|g| g.to_string())
        })
        .await
    }

    /// Pods of the Rollout's ReplicaSets, by pod-template hash.
    pub async fn replica_sets(&self) -> Result<Vec<(String, Pods)>> {
        let list = self.api::<ReplicaSet>().list(&ListParams::default().labels(POD_TEMPLATE_HASH_LABEL)).await?;
        Ok(list
            .items
            .iter()
            .map(|rs| {
                let hash = rs.labels().get(POD_TEMPLATE_HASH_LABEL).cloned().unwrap_or_default();
                let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
                (hash, Pods { desired, available })
            })
            .collect())
    }

    pub async fn pods_of(&self, hash: &str) -> Result<Pods> {
        let all = self.replica_sets().await?;
        Ok(all.into_iter().find(|(h, _)| h == hash).map(|(_, p)| p).unwrap_or(Pods { desired: 0, available: 0 }))
    }

    /// A merge patch of the status subresource, exactly like `kubectl patch --subresource status`.
    pub async fn patch_status(&self, name: &str, patch: Value) -> Result<()> {
        self.api::<Rollout>().patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    pub async fn patch_spec(&self, name: &str, patch: Value) -> Result<()> {
        self.api::<Rollout>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }
}
