//! Reading and operating Rollouts, their ReplicaSets and workloads in e2e tests, with the same
//! patches people's tools send.

use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use rollouts_controller::api::{POD_TEMPLATE_HASH_LABEL, Rollout, RolloutStatus};
use serde_json::{Value, json};

use crate::{DEFAULT_TIMEOUT, TestNamespace, poll_until};

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

    /// Promote past a pause, as `kubectl argo rollouts promote` does at one.
    pub async fn promote(&self, name: &str) -> Result<()> {
        self.patch_status(name, json!({"status": {"pauseConditions": null}})).await
    }

    pub async fn abort(&self, name: &str) -> Result<()> {
        self.patch_status(name, json!({"status": {"abort": true}})).await
    }

    pub async fn retry(&self, name: &str) -> Result<()> {
        self.patch_status(name, json!({"status": {"abort": false}})).await
    }

    /// Sets a container's image in a Rollout's inline template.
    pub async fn set_rollout_image(&self, name: &str, container: &str, image: &str) -> Result<()> {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}});
        self.api::<Rollout>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    /// Sets a container's image in a Deployment (the template of a workloadRef Rollout).
    pub async fn set_deployment_image(&self, name: &str, container: &str, image: &str) -> Result<()> {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}});
        self.api::<Deployment>().patch(name, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
        Ok(())
    }

    pub async fn scale_deployment(&self, name: &str, replicas: i32) -> Result<()> {
        let patch = json!({"spec": {"replicas": replicas}});
        self.api::<Deployment>().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    pub async fn deployment_replicas(&self, name: &str) -> Result<i32> {
        Ok(self.api::<Deployment>().get(name).await?.spec.and_then(|s| s.replicas).unwrap_or(-1))
    }

    /// Waits until the Rollout is at step `index` in `wanted_phase`.
    pub async fn wait_step(&self, name: &str, index: i32, wanted_phase: &str) -> Result<Rollout> {
        self.wait_rollout(name, &format!("step {index}, {wanted_phase}"), |r| {
            status(r).current_step_index == Some(index) && phase(r) == wanted_phase
        })
        .await
    }

    /// Waits until the ReplicaSet of `hash` has exactly `pods` desired and available.
    pub async fn wait_pods(&self, hash: &str, pods: i32) -> Result<()> {
        poll_until(DEFAULT_TIMEOUT, || async {
            Ok((self.pods_of(hash).await? == Pods { desired: pods, available: pods }).then_some(()))
        })
        .await
        .map_err(|e| anyhow!("ReplicaSet {hash} never had {pods} available pods: {e}"))
    }

    /// Waits until the controller has seen the latest spec of the Rollout and of its workload: a
    /// positive sign that it has acted on a change (or decided not to).
    pub async fn wait_observed(&self, name: &str, workload: Option<&str>) -> Result<Rollout> {
        let workload_generation = match workload {
            Some(deployment) => self.api::<Deployment>().get(deployment).await?.metadata.generation,
            None => None,
        };
        self.wait_rollout(name, "the controller to observe the latest spec", |r| {
            let status = status(r);
            status.observed_generation == r.metadata.generation.map(|g| g.to_string())
                && (workload_generation.is_none()
                    || status.workload_observed_generation == workload_generation.map(|g| g.to_string()))
        })
        .await
    }
}
