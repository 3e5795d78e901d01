//! `spec.restartAt`: replace pods created before it, a few at a time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;

use super::planner::Planner;
use super::reasons;
use super::{Action, PodView};

/// How soon a restart retries pods that a PodDisruptionBudget protected.
const RESTART_RETRY: SignedDuration = SignedDuration::from_secs(10);

impl<'a> Planner<'a> {
    /// `spec.restartAt`: replace pods created before it, a few at a time.
    pub(super) fn restart_pods(&mut self) {
        let Some(restart_at) = self.observed.rollout.spec.restart_at.as_ref().map(|t| t.0) else {
            return;
        };
        if self.next.restarted_at.as_ref().map(|t| t.0) == Some(restart_at) {
            return;
        }
        if restart_at > self.now {
            self.requeue_at(restart_at);
            return;
        }
        // Availability is in flux while ReplicaSets are resized: restart once it settles.
        if self
            .actions
            .iter()
            .any(|a| matches!(a, Action::PatchReplicaSet { replicas: Some(_), .. } | Action::CreateReplicaSet(_)))
        {
            self.wait("rollout is restarting: waiting for scaling to finish");
            return;
        }
        let pods = &self.observed.pods;
        let mut old: Vec<&PodView> =
            pods.iter().filter(|p| !p.deleting && p.created.is_some_and(|c| c < restart_at)).collect();
        if old.is_empty() {
            self.next.restarted_at = Some(Time(restart_at));
            self.event(reasons::ROLLOUT_RESTARTED, format!("Restarted all pods created before {restart_at}"));
            return;
        }
        old.sort_by_key(|p| p.created);
        let (_, unavailable) = self.fenceposts();
        let total_spec: i32 = self.observed.replica_sets.iter().map(|rs| rs.spec_replicas).sum();
        let min_available = self.replicas.max(total_spec) - unavailable.max(1);
        let available = i32::try_from(pods.iter().filter(|p| p.available && !p.deleting).count()).unwrap_or(0);
        let budget = usize::try_from((available - min_available).max(0)).unwrap_or(0);
        let remaining = old.len();
        for pod in old.into_iter().take(budget) {
            self.actions.push(Action::EvictPod { name: pod.name.clone() });
        }
        self.requeue_at(self.now + RESTART_RETRY);
        self.wait(format!("rollout is restarting: {remaining} pods left to replace"));
    }
}
