//! `Planner`: the state of one plan of one valid Rollout, the order of its phases, and the small
//! questions every phase asks (which step, which ReplicaSet is stable, was it aborted).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::hash;
use super::replicas;
use super::validate::ValidRollout;
use super::{Action, Event, Observed, Plan, ReplicaSetView, rollout_name};
use crate::api::{CanaryStep, PauseCondition, PodMetadata, RolloutCondition, RolloutStatus};

/// Planning state for one valid Rollout.
pub(super) struct Planner<'a> {
    pub(super) observed: &'a Observed,
    pub(super) valid: ValidRollout<'a>,
    pub(super) now: Timestamp,
    pub(super) replicas: i32,
    pub(super) hash: String,
    pub(super) step_hash: String,
    /// ReplicaSet of the current template, if it exists.
    pub(super) new_rs: Option<&'a ReplicaSetView>,
    pub(super) before: RolloutStatus,
    pub(super) next: RolloutStatus,
    pub(super) conditions: Vec<RolloutCondition>,
    pub(super) actions: Vec<Action>,
    pub(super) events: Vec<Event>,
    pub(super) requeue: Option<Timestamp>,
    /// The first thing this rollout waits for, for `status.message`.
    pub(super) waiting: Option<String>,
    /// Something a person asked for that this plan did not do, and why: leads `status.message`.
    pub(super) notice: Option<String>,
    /// The ReplicaSets this plan sizes (scaling down leaves them alone).
    pub(super) sized: BTreeSet<String>,
    pub(super) created_rs: bool,
    /// The stable ReplicaSet was deleted by someone: everything holds until it is back.
    pub(super) stable_missing: bool,
    pub(super) pause_expired_at: Option<Timestamp>,
    /// The canary weight this plan writes to the VirtualServices, if it changes them.
    pub(super) written_weight: Option<i32>,
    /// The current step's Inconclusive run was promoted: the step is done.
    pub(super) inconclusive_promoted: bool,
    /// The header routes in force are in place once this plan's writes are done.
    pub(super) header_routes_ready: bool,
}

impl<'a> Planner<'a> {
    pub(super) fn new(observed: &'a Observed, valid: ValidRollout<'a>, before: RolloutStatus) -> Self {
        let ephemeral: Vec<&PodMetadata> =
            [&valid.canary.stable_metadata, &valid.canary.canary_metadata].into_iter().flatten().collect();
        let hashes = [
            hash::pod_template_hash(&valid.template, &ephemeral, before.collision_count),
            hash::legacy_pod_template_hash(&valid.template, before.collision_count),
        ];
        // A ReplicaSet made by an earlier version carries the legacy hash of the same template.
        let new_rs = hashes.iter().find_map(|h| observed.replica_sets.iter().find(|rs| rs.hash == *h && !rs.deleting));
        let [hash, _] = hashes;
        let hash = new_rs.map_or(hash, |rs| rs.hash.clone());
        let step_hash = hash::step_hash(valid.steps);
        let mut next = before.clone();
        let conditions = next.conditions.take().unwrap_or_default();
        Planner {
            observed,
            now: observed.now,
            replicas: observed.rollout.spec.replicas.unwrap_or(1).max(0),
            hash,
            step_hash,
            new_rs,
            valid,
            before,
            next,
            conditions,
            actions: Vec::new(),
            events: Vec::new(),
            requeue: None,
            waiting: None,
            notice: None,
            sized: BTreeSet::new(),
            created_rs: false,
            stable_missing: false,
            pause_expired_at: None,
            written_weight: None,
            inconclusive_promoted: false,
            header_routes_ready: false,
        }
    }

    /// The phases, in the order their decisions depend on each other: what the revision and the
    /// people ask for, then the step, then sizes, Services and weights (each seeing the writes
    /// planned before it), then the step again, promotion, clean-up and the status.
    pub(super) fn run(mut self) -> Plan {
        if self.observed.rollout.spec.replicas.is_none() {
            self.actions.push(Action::DefaultReplicas);
        }
        self.ensure_finalizer();
        self.adopt_orphans();
        self.reset_on_change();
        self.initial_deploy();
        self.abort_and_retry();
        self.assess_analysis();
        self.full_promotion();
        self.recreate_stable();
        self.advance_step(false);
        self.size_replica_sets();
        self.route_services();
        self.route_traffic();
        self.route_headers();
        self.advance_step(true);
        self.promote();
        self.keep_analysis_runs();
        self.scale_down_others();
        self.ephemeral_metadata();
        self.scale_down_workload();
        self.restart_pods();
        self.clean_up_history();
        self.annotate_rollout();
        self.write_status();
        Plan {
            actions: self.actions,
            status: self.next,
            events: self.events,
            requeue_at: self.requeue,
            pause_expired_at: self.pause_expired_at,
        }
    }

    /// No pause holds the rollout any more.
    pub(super) fn clear_pause(&mut self) {
        self.next.pause_conditions = None;
        self.next.controller_pause = None;
    }

    /// `currentStepIndex` once every step is done (none without steps).
    pub(super) fn past_the_steps(&self) -> Option<i32> {
        (!self.valid.steps.is_empty()).then_some(self.steps_len())
    }

    /// The current template's ReplicaSet's name, whether it exists yet or not.
    pub(super) fn new_rs_name(&self) -> String {
        self.new_rs.map_or_else(|| format!("{}-{}", self.name(), self.hash), |rs| rs.name.clone())
    }

    /// How an abort of this revision reads in the condition, the Event and the phase message.
    pub(super) fn aborted_message(&self) -> String {
        format!("Rollout aborted update to revision {}", self.revision())
    }

    /// maxSurge and maxUnavailable as pod counts for this Rollout's replicas.
    pub(super) fn fenceposts(&self) -> (i32, i32) {
        let canary = self.valid.canary;
        replicas::fenceposts(canary.max_surge.as_ref(), canary.max_unavailable.as_ref(), self.replicas)
    }

    pub(super) fn name(&self) -> &'a str {
        rollout_name(&self.observed.rollout)
    }

    pub(super) fn steps_len(&self) -> i32 {
        i32::try_from(self.valid.steps.len()).unwrap_or(i32::MAX)
    }

    pub(super) fn index(&self) -> usize {
        usize::try_from(self.next.current_step_index.unwrap_or(0).max(0)).unwrap_or(0)
    }

    pub(super) fn at_end(&self) -> bool {
        self.index() >= self.valid.steps.len()
    }

    pub(super) fn aborted(&self) -> bool {
        self.next.abort == Some(true)
    }

    pub(super) fn paused_by_user(&self) -> bool {
        self.observed.rollout.spec.paused == Some(true)
    }

    pub(super) fn pause_conditions(&self) -> &[PauseCondition] {
        self.next.pause_conditions.as_deref().unwrap_or_default()
    }

    pub(super) fn stable_hash(&self) -> Option<&str> {
        self.next.stable_rs.as_deref()
    }

    pub(super) fn rs_by_hash(&self, hash: &str) -> Option<&'a ReplicaSetView> {
        self.observed.replica_sets.iter().find(|rs| rs.hash == hash && !rs.deleting)
    }

    /// The stable ReplicaSet, when it differs from the current template's.
    pub(super) fn stable_rs(&self) -> Option<&'a ReplicaSetView> {
        self.stable_hash().filter(|h| *h != self.hash).and_then(|h| self.rs_by_hash(h))
    }

    pub(super) fn promoted(&self) -> bool {
        self.stable_hash() == Some(self.hash.as_str())
    }

    pub(super) fn routed(&self) -> bool {
        self.valid.traffic_routed()
    }

    pub(super) fn new_available(&self) -> i32 {
        self.new_rs.map_or(0, |rs| rs.available)
    }

    pub(super) fn current_step(&self) -> Option<&'a CanaryStep> {
        self.valid.steps.get(self.index())
    }

    /// `now` as status records it: whole seconds, so what this plan decides from a time it
    /// wrote is what the next plan decides from the stored one.
    pub(super) fn stamp(&self) -> Time {
        Time(Timestamp::from_second(self.now.as_second()).unwrap_or(self.now))
    }

    pub(super) fn wait(&mut self, message: impl Into<String>) {
        if self.waiting.is_none() {
            self.waiting = Some(message.into());
        }
    }

    pub(super) fn requeue_at(&mut self, at: Timestamp) {
        self.requeue = Some(self.requeue.map_or(at, |current| current.min(at)));
    }

    pub(super) fn event(&mut self, reason: &'static str, message: String) {
        self.events.push(Event { warning: false, reason, message });
    }
}
