//! The traffic weight in force and its write: what the step asks for, held while a Service the
//! route uses selects no available pods.

use super::planner::Planner;
use super::reasons;
use super::step_list;
use crate::api::{CanaryStatus, TrafficWeights, WeightDestination};

impl<'a> Planner<'a> {
    /// Canary weight of each managed route, in order, across the routers.
    pub(super) fn observed_weights(&self) -> Vec<i32> {
        let Some((_, canary)) = self.valid.services else {
            return Vec::new();
        };
        self.valid.routers.iter().flat_map(|router| router.canary_weights(self.observed, canary)).collect()
    }

    /// The canary weights once this plan's writes are done: the status is written only after
    /// every action succeeded, so a weight this plan writes counts as set.
    pub(super) fn weights_after_writes(&self) -> Vec<i32> {
        let observed = self.observed_weights();
        match self.written_weight {
            Some(weight) => vec![weight; observed.len()],
            None => observed,
        }
    }

    /// The canary weight the VirtualServices should hold now; `None` leaves them as they are.
    pub(super) fn desired_weight(&mut self, observed: &[i32]) -> Option<i32> {
        let (stable_service, canary_service) = self.valid.services?;
        if self.promoted() {
            // Back to the stable Service once it selects the new pods and that has settled.
            if observed.iter().all(|w| *w == 0) {
                return Some(0);
            }
            let switched = self.service_hash(stable_service) == Some(self.hash.as_str());
            return (switched && self.traffic_settled("returning the VirtualService weights to the stable Service"))
                .then_some(0);
        }
        // Like Argo, the canary Service switch and the first weight go in one plan: until the
        // endpoints follow, that share reaches the pods the Service selected before, still running.
        if self.aborted() || self.new_available() == 0 || !self.selects_after_writes(canary_service, &self.hash) {
            return Some(0);
        }
        // A manual pause holds the step, so the weight stays that of the step (and is put back if
        // someone changes it).
        let index = self.index();
        if self.at_end() {
            let ready =
                self.new_rs.is_some_and(|rs| rs.spec_replicas >= self.replicas && rs.available >= self.replicas);
            if !ready {
                self.wait_for_counts(self.replicas, self.replicas);
            }
            let all = self.valid.max_weight;
            return Some(if ready { all } else { step_list::set_weight_before(self.valid.steps, index) });
        }
        let (canary, stable) = self.targets();
        Some(if self.at_counts(canary, stable) {
            step_list::set_weight_at(self.valid.steps, index, self.valid.max_weight)
        } else {
            step_list::set_weight_before(self.valid.steps, index)
        })
    }

    /// No weight moves onto a Service that selects no available pods. While the stable Service
    /// selects none (its ReplicaSet is being repaired), nothing moves at all unless a full
    /// promotion was asked for: the canary is not proven yet.
    pub(super) fn may_move_traffic(&mut self, current: i32, desired: i32) -> bool {
        let Some((stable_service, canary_service)) = self.valid.services else { return true };
        if desired == current {
            return true;
        }
        let raised = if desired > current { canary_service } else { stable_service };
        let stable_empty = !self.serves_after_writes(stable_service);
        let blocked = if !self.serves_after_writes(raised) {
            Some(raised)
        } else if stable_empty && self.next.promote_full != Some(true) {
            Some(stable_service)
        } else {
            None
        };
        if let Some(service) = blocked {
            self.wait(format!("waiting for Service {service} to select available pods before moving traffic"));
        }
        blocked.is_none()
    }

    pub(super) fn route_traffic(&mut self) {
        let Some((stable_service, canary_service)) = self.valid.services else {
            return;
        };
        if !self.routed() {
            return;
        }
        let observed = self.observed_weights();
        let current = observed.first().copied().unwrap_or(0);
        let desired = self.desired_weight(&observed).filter(|desired| self.may_move_traffic(current, *desired));
        let mut weight = current;
        if let Some(desired) = desired {
            let services = (stable_service, canary_service);
            let writes: Vec<_> = (self.valid.routers.iter())
                .flat_map(|router| router.set_weight(self.observed, services, desired, self.now))
                .collect();
            let changed = !writes.is_empty();
            self.actions.extend(writes);
            if changed {
                let message = if current == desired {
                    format!("Traffic weight set to {desired}")
                } else {
                    format!("Traffic weight updated from {current} to {desired}")
                };
                self.event(reasons::TRAFFIC_WEIGHT_UPDATED, message);
                self.traffic_moved();
                self.written_weight = Some(desired);
                weight = desired;
            }
        }
        let stable_hash = self.stable_hash().map(str::to_owned);
        let weights = TrafficWeights {
            canary: WeightDestination {
                weight,
                service_name: Some(canary_service.into()),
                pod_template_hash: Some(self.hash.clone()),
            },
            stable: WeightDestination {
                weight: self.valid.max_weight - weight,
                service_name: Some(stable_service.into()),
                pod_template_hash: stable_hash,
            },
            verified: None,
        };
        self.next.canary.get_or_insert_with(CanaryStatus::default).weights = Some(weights);
    }
}
