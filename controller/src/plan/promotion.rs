//! The request-safe order of traffic changes at promotion and abort, the same for every router:
//! weights, then settle, then the selector, then settle, then the weights back. The time of each
//! change is recorded with the change itself, so a gap survives a restart.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::planner::Planner;
use super::reasons;
use super::{later, seconds};
use crate::api::CanaryStatus;

impl<'a> Planner<'a> {
    pub(super) fn settle(&self) -> SignedDuration {
        let rollout_seconds = self.valid.canary.traffic_settle_seconds;
        rollout_seconds.map_or_else(
            || SignedDuration::try_from(self.observed.config.settle).unwrap_or_default(),
            |s| seconds(i64::from(s)),
        )
    }

    /// The last traffic change: what status says, or what the objects it went through say, as a
    /// controller may have stopped between that write and the status write.
    pub(super) fn last_traffic_change(&self) -> Option<Timestamp> {
        let recorded = self.next.canary.as_ref().and_then(|c| c.traffic_changed_at.as_ref()).map(|t| t.0);
        let services = self.valid.services.into_iter().flat_map(|(stable, canary)| [stable, canary]);
        let on_services = services.filter_map(|name| self.observed.services.get(name)?.traffic_changed_at);
        let on_routes = self.valid.routers.iter().filter_map(|router| router.traffic_changed_at(self.observed));
        recorded.into_iter().chain(on_services).chain(on_routes).max()
    }

    /// True when the last traffic change is at least `settle` old; otherwise waits for it.
    pub(super) fn traffic_settled(&mut self, next_move: &str) -> bool {
        let Some(changed_at) = self.last_traffic_change() else {
            return true;
        };
        let settled_at = later(changed_at, self.settle());
        if self.now >= settled_at {
            return true;
        }
        self.requeue_at(settled_at);
        // The gap, not the time left: a countdown would rewrite the status on every look.
        let gap = self.settle().as_secs_f64();
        self.wait(format!("waiting {gap}s for traffic to settle before {next_move}"));
        false
    }

    /// Records a traffic change, to the microsecond, so settle gaps are exact.
    pub(super) fn traffic_moved(&mut self) {
        self.next.canary.get_or_insert_with(CanaryStatus::default).traffic_changed_at = Some(MicroTime(self.now));
    }

    /// Makes the current template stable once the steps are done and it serves everyone.
    pub(super) fn promote(&mut self) {
        if self.promoted() || self.aborted() {
            return;
        }
        let steps_done = self.at_end() || self.next.promote_full == Some(true);
        if !steps_done {
            return;
        }
        let full = self.new_rs.is_some_and(|rs| rs.available >= self.replicas && rs.spec_replicas >= self.replicas);
        if !full {
            self.wait_for_counts(self.replicas, 0);
            return;
        }
        if self.routed() {
            let all_traffic = self.weights_after_writes().iter().all(|w| *w == self.valid.max_weight);
            if !all_traffic {
                self.wait("waiting for the canary to receive 100% of traffic");
                return;
            }
            if !self.traffic_settled("switching the stable Service to the new pods") {
                return;
            }
            let stable_service = self.valid.services.map(|(stable, _)| stable);
            if let Some(service) = stable_service {
                let hash = self.hash.clone();
                if self.point_service(service, &hash) {
                    self.traffic_moved();
                    // Said now, so the next look finds nothing new to write.
                    self.traffic_settled("returning the VirtualService weights to the stable Service");
                }
            }
        }
        let reason = if self.next.promote_full == Some(true) {
            "Full promotion requested".to_string()
        } else {
            format!("Completed all {} canary steps", self.valid.steps.len())
        };
        self.next.stable_rs = Some(self.hash.clone());
        if let Some(weights) = self.next.canary.as_mut().and_then(|c| c.weights.as_mut()) {
            weights.stable.pod_template_hash = Some(self.hash.clone());
        }
        self.next.promote_full = None;
        self.clear_pause();
        self.next.current_step_index = self.past_the_steps();
        let message = format!("Rollout completed update to revision {} ({}): {reason}", self.revision(), self.hash);
        self.event(reasons::ROLLOUT_COMPLETED, message);
    }
}
