//! The stable and canary Services' selectors: desired state, put back when someone changes them,
//! and never pointed at a ReplicaSet without available pods.

use super::Action;
use super::planner::Planner;
use super::reasons;
use crate::api::POD_TEMPLATE_HASH_LABEL;

impl<'a> Planner<'a> {
    /// Whether the canary Service selects the current template's pods now.
    pub(super) fn canary_service_on_canary(&self) -> bool {
        self.valid.services.is_some_and(|(_, canary)| self.service_hash(canary) == Some(self.hash.as_str()))
    }

    /// The hash a Service selects now.
    pub(super) fn service_hash(&self, service: &str) -> Option<&'a str> {
        self.observed.services.get(service).and_then(|s| s.selector.get(POD_TEMPLATE_HASH_LABEL)).map(String::as_str)
    }

    /// Whether `service` selects `hash` once this plan's earlier actions are done (actions run in
    /// order, and a failed one stops the rest).
    pub(super) fn selects_after_writes(&self, service: &str, hash: &str) -> bool {
        let pointed_now = self.actions.iter().any(|action| action.points_service_at(service, hash));
        pointed_now || self.service_hash(service) == Some(hash)
    }

    /// Whether a Service selects available pods once this plan's writes are done.
    pub(super) fn serves_after_writes(&self, service: &str) -> bool {
        let pointed = self.actions.iter().rev().find_map(|action| match action {
            Action::SetServiceSelector { service: s, hash, .. } if s == service => Some(hash.as_deref()),
            _ => None,
        });
        match pointed.unwrap_or_else(|| self.service_hash(service)) {
            Some(hash) => self.rs_by_hash(hash).is_some_and(|rs| rs.available > 0),
            None => self.observed.replica_sets.iter().any(|rs| rs.owned && rs.available > 0),
        }
    }

    /// Points a Service at `hash` when that ReplicaSet can serve: some available pods, or all of
    /// them when the Service is not managed yet.
    pub(super) fn point_service(&mut self, service: &str, hash: &str) -> bool {
        let Some(current) = self.observed.services.get(service) else {
            return false;
        };
        let managed = current.managed_by.as_deref() == Some(self.name());
        if self.service_hash(service) == Some(hash) && managed {
            return false;
        }
        let Some(target) = self.rs_by_hash(hash) else {
            return false;
        };
        let ready = if managed {
            target.available > 0
        } else {
            target.spec_replicas > 0 && target.available >= target.spec_replicas
        };
        let emptied = self.actions.iter().any(
            |action| matches!(action, Action::PatchReplicaSet { name, replicas: Some(0), .. } if *name == target.name),
        );
        if emptied {
            return false; // this plan scales it to zero: pointing a Service at it would empty the Service
        }
        if !ready {
            self.wait(format!(
                "waiting for ReplicaSet {} to have available pods before switching Service {service}",
                target.name
            ));
            return false;
        }
        let from = self.service_hash(service).unwrap_or("").to_string();
        self.actions.push(Action::SetServiceSelector {
            service: service.into(),
            hash: Some(hash.into()),
            changed_at: self.now,
        });
        self.event(
            reasons::SWITCH_SERVICE,
            format!("Switched selector for service '{service}' from '{from}' to '{hash}'"),
        );
        true
    }

    /// Services this Rollout manages but no longer names get their plain selector back.
    pub(super) fn release_services(&mut self) {
        let named: Vec<&str> = self.valid.services.map(|(stable, canary)| vec![stable, canary]).unwrap_or_default();
        let released: Vec<String> = self
            .observed
            .services
            .values()
            .filter(|s| s.managed_by.as_deref() == Some(self.name()) && !named.contains(&s.name.as_str()))
            .map(|s| s.name.clone())
            .collect();
        for service in released {
            self.actions.push(Action::SetServiceSelector { service, hash: None, changed_at: self.now });
        }
    }

    pub(super) fn route_services(&mut self) {
        self.release_services();
        let Some((stable_service, canary_service)) = self.valid.services else {
            return;
        };
        let stable = self.stable_hash().unwrap_or(&self.hash).to_string();
        // The stable Service selects the stable pods, and is put back when someone changes it.
        // With traffic routing it moves to the new pods at promotion (`promote`), with every
        // weight on the canary; a promotion whose status write is still to come has moved it
        // already, and that stands. Without, it moves once the steps are done and some new pods
        // are available, before the old pods go (they are held until it has).
        let steps_done = (self.at_end() || self.next.promote_full == Some(true)) && !self.aborted();
        let promoting = steps_done
            && self.service_hash(stable_service) == Some(self.hash.as_str())
            && self.observed_weights().iter().all(|w| *w == self.valid.max_weight);
        let stable_target =
            if steps_done && !self.routed() && self.new_available() > 0 { self.hash.clone() } else { stable.clone() };
        if !promoting && self.point_service(stable_service, &stable_target) && self.routed() {
            self.traffic_moved();
        }
        // After an abort, or while the step wants no canary pods, the canary Service serves the
        // stable pods; without traffic routing also while the new pods aren't available yet, so
        // an interrupted update's pods can go without the Service losing its endpoints.
        let canary_home = self.aborted()
            || self.stable_rs().is_some() && self.canary_goal() == 0
            || !self.routed() && self.new_available() == 0;
        let canary_target = if canary_home { stable.clone() } else { self.hash.clone() };
        if canary_home && self.routed() {
            // Traffic goes back to stable first; the canary Service follows once that settled.
            let weights_zero = self.observed_weights().iter().all(|w| *w == 0);
            if self.service_hash(canary_service) != Some(canary_target.as_str())
                && weights_zero
                && self.traffic_settled("pointing the canary Service back at stable")
                && self.point_service(canary_service, &canary_target)
            {
                self.traffic_moved();
            }
            return;
        }
        self.point_service(canary_service, &canary_target);
    }
}
