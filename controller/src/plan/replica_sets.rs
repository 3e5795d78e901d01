//! How many pods the canary and stable ReplicaSets get at this step, sizing them, and creating
//! ReplicaSets (a new revision's, or a deleted stable's again from its recorded template).

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::metadata::{self, Role};
use super::objects::{new_replica_set, template_record};
use super::planner::Planner;
use super::reasons;
use super::replicas::{self, BasicCanary, RoutedCanary, Scale};
use super::step_list;
use super::{Action, Event, ReplicaSetView, seconds};
use crate::api::{
    DESIRED_REPLICAS_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, SCALE_DOWN_DEADLINE_ANNOTATION,
};

/// Default seconds a canary is kept after an abort moved its traffic away.
const DEFAULT_ABORT_SCALE_DOWN_DELAY: i32 = 30;

impl<'a> Planner<'a> {
    /// Pods the stable should have at this step, as if it were there.
    fn stable_goal(&self) -> i32 {
        if self.routed() {
            return self.routed_targets().1;
        }
        let (surge, _) = self.fenceposts();
        replicas::weighted_split(self.replicas, self.replica_weight(), surge).1
    }

    /// Pods the canary should end up with at this step (before any hold).
    pub(super) fn canary_goal(&self) -> i32 {
        if self.stable_rs().is_none() {
            return self.replicas;
        }
        if self.routed() {
            return self.routed_targets().0;
        }
        let (surge, _) = self.fenceposts();
        replicas::weighted_split(self.replicas, self.replica_weight(), surge).0
    }

    pub(super) fn routed_targets(&self) -> (i32, i32) {
        let canary = self.valid.canary;
        let explicit = (!self.aborted()).then(|| step_list::canary_scale_at(self.valid.steps, self.index())).flatten();
        let weight = explicit.and_then(|s| s.weight).unwrap_or_else(|| self.replica_weight());
        let observed = self.observed_weights();
        let max_weight = self.valid.max_weight;
        let actual = observed.first().map(|w| (*w, max_weight - *w));
        replicas::routed_canary(RoutedCanary {
            replicas: self.replicas,
            weight,
            max_weight,
            explicit_canary: explicit.and_then(|s| s.replicas),
            min_pods_per_replica_set: canary.min_pods_per_replica_set,
            dynamic_stable_scale: canary.dynamic_stable_scale == Some(true),
            actual_weights: actual,
            aborted: self.aborted(),
        })
    }

    /// Desired pods of the canary (current template) and stable ReplicaSets.
    pub(super) fn targets(&self) -> (i32, i32) {
        let (canary_pods, stable_pods) = self.unheld_targets();
        let current = self.new_rs.map_or(0, |rs| rs.spec_replicas);
        // Pods a Service still selects stay until it has moved away (see `route_services`).
        let hold = self.at_match_traffic_weight()
            || self.stable_rs().is_some() && self.canary_goal() == 0 && self.canary_service_on_canary()
            || self.aborted() && self.routed() && !self.abort_scale_down_due();
        (if hold { canary_pods.max(current) } else { canary_pods }, stable_pods)
    }

    pub(super) fn unheld_targets(&self) -> (i32, i32) {
        // The canary is not grown to stand in for a deleted stable, unless a full promotion asks.
        if self.stable_missing && self.next.promote_full != Some(true) {
            return (self.new_rs.map_or(0, |rs| rs.spec_replicas), self.replicas);
        }
        let Some(stable) = self.stable_rs() else {
            return (self.replicas, 0);
        };
        if self.routed() {
            return self.routed_targets();
        }
        let (surge, unavailable) = self.fenceposts();
        let scale = |rs: &ReplicaSetView| Scale { spec: rs.spec_replicas, available: rs.available };
        let others_spec = self.others().map(|rs| rs.spec_replicas).sum();
        // While the stable Service still selects the stable pods, a weight short of 100 keeps one
        // of them (the split never empties a side below 100 %), within the surge budget; the
        // Service moves to the canary's pods first (`route_services`).
        let stable_selected =
            self.valid.services.is_some_and(|(service, _)| self.service_hash(service) == Some(&stable.hash));
        let weight = if stable_selected { self.replica_weight().min(99) } else { self.replica_weight() };
        replicas::basic_canary(BasicCanary {
            replicas: self.replicas,
            weight,
            surge,
            unavailable,
            canary: self.new_rs.map(scale),
            stable: Some(scale(stable)),
            others_spec,
        })
    }

    pub(super) fn others(&self) -> impl Iterator<Item = &'a ReplicaSetView> + '_ {
        let stable = self.stable_hash().map(str::to_owned);
        self.observed
            .replica_sets
            .iter()
            .filter(move |rs| rs.hash != self.hash && Some(&rs.hash) != stable.as_ref() && !rs.deleting)
    }

    /// The canary and stable have the pods this step asks for, all available.
    pub(super) fn at_counts(&self, canary: i32, stable: i32) -> bool {
        let new_ok =
            self.new_rs.is_some_and(|rs| rs.spec_replicas == canary && rs.available >= canary && rs.status_current);
        let dynamic = self.routed() && self.valid.canary.dynamic_stable_scale == Some(true);
        let stable_ok =
            dynamic || self.stable_rs().is_none_or(|rs| rs.spec_replicas == stable && rs.status_replicas == stable);
        let others_ok = self.routed() || self.others().all(|rs| rs.available == 0);
        new_ok && stable_ok && others_ok
    }

    pub(super) fn wait_for_counts(&mut self, canary: i32, stable: i32) {
        let new_name = self.new_rs_name();
        let new_available = self.new_available();
        if new_available < canary || self.new_rs.is_none_or(|rs| rs.spec_replicas != canary) {
            self.wait(format!("waiting for canary ReplicaSet {new_name}: {new_available} of {canary} pods available"));
            return;
        }
        if let Some(rs) = self.stable_rs()
            && (rs.spec_replicas != stable || rs.status_replicas != stable)
        {
            // Count what is awaited: pods to come, or pods to go.
            let message = if rs.status_replicas > stable {
                let extra = rs.status_replicas - stable;
                format!(
                    "waiting for stable ReplicaSet {} to scale down to {stable} pods: {extra} to terminate",
                    rs.name
                )
            } else {
                format!("waiting for stable ReplicaSet {}: {} of {stable} pods", rs.name, rs.status_replicas)
            };
            self.wait(message);
            return;
        }
        let old = self.others().find(|rs| rs.available > 0).map(|rs| rs.name.clone());
        if let Some(name) = old {
            self.wait(format!("waiting for old ReplicaSet {name} to scale down"));
        }
    }

    pub(super) fn size_replica_sets(&mut self) {
        let (canary, stable) = self.targets();
        // Abort: record when the canary may go, once traffic has left it.
        if self.aborted()
            && self.routed()
            && !self.abort_scale_down_due()
            && let Some(rs) = self.new_rs
        {
            match rs.scale_down_deadline {
                Some(deadline) => self.requeue_at(deadline),
                None if self.canary_traffic_gone() => {
                    let delay = i64::from(
                        self.valid.canary.abort_scale_down_delay_seconds.unwrap_or(DEFAULT_ABORT_SCALE_DOWN_DELAY),
                    );
                    let deadline = self.now + seconds(delay);
                    let name = rs.name.clone();
                    self.set_deadline(&name, Some(deadline));
                    self.requeue_at(deadline);
                }
                None => {}
            }
        }
        if let Some(rs) = self.stable_rs() {
            self.size(rs, stable);
        }
        match self.new_rs {
            Some(rs) => self.size(rs, canary),
            // A paused rollout starts no new revision; replica changes still apply (unlike
            // upstream #4261).
            None if self.paused_by_user() => {
                self.wait("paused: the new ReplicaSet is created when the rollout is resumed")
            }
            None => self.create_new_rs(canary),
        }
    }

    pub(super) fn size(&mut self, rs: &ReplicaSetView, replicas: i32) {
        let mut annotations = BTreeMap::new();
        if rs.desired_replicas_annotation != Some(self.replicas) {
            annotations.insert(DESIRED_REPLICAS_ANNOTATION.to_string(), Some(self.replicas.to_string()));
        }
        // New and stable pods serve; a deadline on them is stale. Except an aborted canary's, and
        // a stable's whose Service already left it: a promotion whose status is yet to be written.
        let stable_service_left = rs.hash != self.hash
            && self.valid.services.is_some_and(|(stable, _)| self.service_hash(stable).is_some_and(|h| h != rs.hash));
        let keep_deadline = self.aborted() && rs.hash == self.hash || stable_service_left;
        if rs.scale_down_deadline.is_some() && !keep_deadline {
            annotations.insert(SCALE_DOWN_DEADLINE_ANNOTATION.to_string(), None);
        }
        let revision = self.revision();
        if rs.hash == self.hash && rs.revision != Some(revision) {
            // A rollback re-uses an old ReplicaSet: it becomes the newest revision.
            annotations.insert(REVISION_ANNOTATION.to_string(), Some(revision.to_string()));
            if let Some(old) = rs.revision {
                let history = match &rs.revision_history {
                    Some(history) => format!("{history},{old}"),
                    None => old.to_string(),
                };
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), Some(history));
            }
        }
        self.patch_rs(rs, replicas, annotations);
    }

    pub(super) fn patch_rs(
        &mut self,
        rs: &ReplicaSetView,
        replicas: i32,
        annotations: BTreeMap<String, Option<String>>,
    ) {
        let resize = rs.spec_replicas != replicas;
        if !resize && annotations.is_empty() {
            return;
        }
        if resize {
            let direction = if replicas > rs.spec_replicas { "up" } else { "down" };
            let revision = rs.revision.map_or_else(String::new, |r| format!(" (revision {r})"));
            self.event(
                reasons::SCALING_REPLICA_SET,
                format!("Scaled {direction} ReplicaSet {}{revision} from {} to {replicas}", rs.name, rs.spec_replicas),
            );
        }
        self.sized.insert(rs.name.clone());
        self.actions.push(Action::PatchReplicaSet {
            name: rs.name.clone(),
            replicas: resize.then_some(replicas),
            annotations,
        });
    }

    pub(super) fn set_deadline(&mut self, name: &str, deadline: Option<Timestamp>) {
        let value = deadline.map(|d| d.to_string());
        let annotations = BTreeMap::from([(SCALE_DOWN_DEADLINE_ANNOTATION.to_string(), value)]);
        self.actions.push(Action::PatchReplicaSet { name: name.into(), replicas: None, annotations });
    }

    pub(super) fn create_new_rs(&mut self, replicas: i32) {
        let revision = self.max_other_revision() + 1;
        let rs = new_replica_set(
            &self.observed.rollout,
            &self.valid.template,
            &self.valid.selector,
            &self.hash,
            revision,
            replicas,
            self.replicas,
            &metadata::desired(self.valid.canary, self.role(&self.hash)),
        );
        let name = rs.metadata.name.clone().unwrap_or_default();
        let record = template_record(&self.observed.rollout, &self.valid.template, &self.hash, revision);
        self.actions.push(Action::RecordTemplate(Box::new(record)));
        self.actions.push(Action::CreateReplicaSet(Box::new(rs)));
        self.event(reasons::ROLLOUT_UPDATED, format!("Rollout updated to revision {revision}"));
        self.event(reasons::NEW_REPLICA_SET_CREATED, format!("Created ReplicaSet {name} (revision {revision})"));
        self.sized.insert(name.clone());
        self.created_rs = true;
        self.wait(format!("waiting for canary ReplicaSet {name}: 0 of {replicas} pods available"));
    }

    /// The stable ReplicaSet deleted by hand (or by a mistaken cleanup) is created again from its
    /// recorded template, at the size the step gives the stable; until it is back, steps, sizes
    /// and weights hold. A full promotion needs no stable: the canary takes everything.
    pub(super) fn recreate_stable(&mut self) {
        let Some(stable) = self.stable_hash().filter(|h| *h != self.hash).map(str::to_owned) else {
            return;
        };
        if self.rs_by_hash(&stable).is_some() || self.next.promote_full == Some(true) {
            return;
        }
        self.stable_missing = true;
        let name = format!("{}-{stable}", self.name());
        let Some(record) = &self.observed.stable_template else {
            self.wait(format!(
                "stable ReplicaSet {name} was deleted and its pod template was not recorded; restore it, or promote the canary in full"
            ));
            return;
        };
        let rs = new_replica_set(
            &self.observed.rollout,
            &record.template,
            &self.valid.selector,
            &stable,
            record.revision,
            self.stable_goal(),
            self.replicas,
            &metadata::desired(self.valid.canary, Role::Stable),
        );
        self.actions.push(Action::RecreateReplicaSet(Box::new(rs)));
        self.events.push(Event {
            warning: true,
            reason: reasons::REPLICA_SET_RECREATED,
            message: format!("Created the stable ReplicaSet {name} again: it was deleted"),
        });
        self.wait(format!("waiting for stable ReplicaSet {name}, created again after it was deleted"));
    }
}
