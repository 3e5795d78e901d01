//! Every decision of the controller, as a pure function: `plan(&Observed) -> Plan`.
//!
//! No client, no clock, no randomness: the time is `Observed::now`. A plan is an ordered list of
//! idempotent actions, the status to write and when to look again. `apply` executes it.

mod conditions;
pub mod defaults;
pub mod hash;
pub mod metadata;
mod observed;
pub mod replicas;
pub mod steps;
pub mod traffic;
mod validate;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub use observed::{
    Observed, PlanConfig, PodView, RecordedTemplate, ReplicaSetView, ServiceView, VirtualServiceView, Workload,
};
pub use validate::ManagedVirtualService;

use crate::api::{
    CanaryStatus, DESIRED_REPLICAS_ANNOTATION, EPHEMERAL_METADATA_ANNOTATION, FINALIZER, POD_TEMPLATE_HASH_LABEL,
    PauseCondition, PodMetadata, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, Rollout, RolloutStatus,
    SCALE_DOWN_DEADLINE_ANNOTATION, TrafficWeights, WORKLOAD_GENERATION_ANNOTATION, WeightDestination,
};
use conditions as cond;
use metadata::{MetadataChange, Role};
use replicas::{BasicCanary, RoutedCanary, Scale};
use validate::ValidRollout;

/// What one reconcile does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Writes, in order. Each is idempotent; apply stops at the first failure.
    pub actions: Vec<Action>,
    /// The status to write (apply sends only what differs from the observed status).
    pub status: RolloutStatus,
    /// Kubernetes Events for what changed, emitted after the status is written.
    pub events: Vec<Event>,
    /// When to reconcile again without any change being observed (timed transitions).
    pub requeue_at: Option<Timestamp>,
    /// When the timed pause that this plan moves past expired (for the latency metric).
    pub pause_expired_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write `spec.replicas: 1` on a Rollout without replicas, so the scale subresource has one.
    DefaultReplicas,
    AddFinalizer,
    RemoveFinalizer,
    /// Set (`Some`) or remove (`None`) the Rollout's bookkeeping annotations: its revision and
    /// the generation of the workload it references (which Argo CD's health check compares).
    AnnotateRollout {
        annotations: BTreeMap<String, Option<String>>,
    },
    CreateReplicaSet(Box<ReplicaSet>),
    /// Record a revision's pod template before its ReplicaSet is created (kept as a
    /// ControllerRevision owned by the Rollout, named like the ReplicaSet).
    RecordTemplate(Box<ControllerRevision>),
    /// Delete the record of a revision whose ReplicaSet is deleted.
    DeleteTemplateRecord {
        name: String,
    },
    /// Take an orphan ReplicaSet the selector matches.
    AdoptReplicaSet {
        name: String,
    },
    /// Size a ReplicaSet and set (`Some`) or remove (`None`) annotations.
    PatchReplicaSet {
        name: String,
        replicas: Option<i32>,
        annotations: BTreeMap<String, Option<String>>,
    },
    DeleteReplicaSet {
        name: String,
    },
    /// Point a Service at a pod-template hash, recording `changed_at` on it; `None` removes the
    /// hash and this controller's annotations.
    SetServiceSelector {
        service: String,
        hash: Option<String>,
        changed_at: Timestamp,
    },
    /// A JSON Patch setting route weights on a VirtualService.
    SetVirtualServiceWeights {
        namespace: String,
        name: String,
        patch: Vec<serde_json::Value>,
        canary_weight: i32,
    },
    /// Set `spec.replicas` of the referenced Deployment.
    ScaleWorkload {
        name: String,
        replicas: i32,
    },
    /// Change ephemeral labels and annotations in a ReplicaSet's pod template.
    SetTemplateMetadata {
        replica_set: String,
        change: MetadataChange,
    },
    /// Change ephemeral labels and annotations on the pods of a ReplicaSet (those of `hash`).
    SetPodMetadata {
        replica_set: String,
        hash: String,
        change: MetadataChange,
    },
    /// Evict a pod through the Eviction API (PodDisruptionBudgets apply).
    EvictPod {
        name: String,
    },
}

impl Action {
    /// Whether this action points `service` at the pods of `hash`.
    pub fn points_service_at(&self, service: &str, hash: &str) -> bool {
        matches!(self, Action::SetServiceSelector { service: s, hash: Some(h), .. } if s == service && h == hash)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Default seconds old pods are kept after traffic leaves them (traffic routing only).
const DEFAULT_SCALE_DOWN_DELAY: i64 = 30;
/// Default seconds a canary is kept after an abort moved its traffic away.
const DEFAULT_ABORT_SCALE_DOWN_DELAY: i64 = 30;
const DEFAULT_REVISION_HISTORY_LIMIT: usize = 10;
const DEFAULT_PROGRESS_DEADLINE: i64 = 600;
/// A Rollout being deleted gives the restored Deployment this long to become available.
const RESTORE_TIMEOUT: i64 = 600;
/// How soon a restart retries pods that a PodDisruptionBudget protected.
const RESTART_RETRY: SignedDuration = SignedDuration::from_secs(10);

/// Whether `spec.restartAt` has passed and is not yet done: `observe` gathers pods only then.
pub fn restart_due(rollout: &Rollout, now: Timestamp) -> bool {
    let restart_at = rollout.spec.restart_at.as_ref().map(|t| t.0);
    let restarted_at = rollout.status.as_ref().and_then(|s| s.restarted_at.as_ref()).map(|t| t.0);
    restart_at.is_some_and(|at| at <= now && Some(at) != restarted_at)
}

/// Decides everything one reconcile of `observed.rollout` does.
pub fn plan(observed: &Observed) -> Plan {
    let rollout = &observed.rollout;
    if rollout.metadata.deletion_timestamp.is_some() {
        return finalize(observed);
    }
    let before = rollout.status.clone().unwrap_or_default();
    match validate::validate(observed) {
        Err(message) => invalid(observed, before, &message),
        Ok(valid) => Planner::new(observed, valid, before).run(),
    }
}

fn seconds(value: i64) -> SignedDuration {
    SignedDuration::from_secs(value)
}

/// `at + by`, for times read from objects that anyone may have written: a time past the end of
/// the calendar is "never" instead of a panic.
fn later(at: Timestamp, by: SignedDuration) -> Timestamp {
    at.checked_add(by).unwrap_or(Timestamp::MAX)
}

fn rollout_name(rollout: &Rollout) -> &str {
    rollout.metadata.name.as_deref().unwrap_or_default()
}

fn generation(rollout: &Rollout) -> Option<String> {
    rollout.metadata.generation.map(|g| g.to_string())
}

/// The apiserver refused the ReplicaSet for this pod template: an invalid spec too.
pub fn invalid_template(observed: &Observed, apiserver_message: &str) -> Plan {
    let before = observed.rollout.status.clone().unwrap_or_default();
    invalid(observed, before, &format!("spec.template: the apiserver rejected the pod template: {apiserver_message}"))
}

/// An invalid spec: report it and change nothing else.
fn invalid(observed: &Observed, before: RolloutStatus, message: &str) -> Plan {
    let mut status = before.clone();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let full = format!("The Rollout \"{}\" is invalid: {message}", rollout_name(&observed.rollout));
    cond::set(&mut conditions, cond::INVALID_SPEC, "True", cond::INVALID_SPEC, &full, observed.now);
    status.conditions = Some(conditions);
    status.phase = Some("Degraded".into());
    status.message = Some(format!("InvalidSpec: {full}"));
    status.observed_generation = generation(&observed.rollout);
    let mut events = Vec::new();
    let changed =
        before.conditions.as_deref().and_then(|c| cond::find(c, cond::INVALID_SPEC)).is_none_or(|c| c.message != full);
    if changed {
        events.push(Event { warning: true, reason: "InvalidSpec", message: full });
    }
    Plan { status, events, ..Default::default() }
}

/// A Rollout being deleted: give the Deployment its pods back, release the Services, then let
/// the garbage collector remove the ReplicaSets.
fn finalize(observed: &Observed) -> Plan {
    let rollout = &observed.rollout;
    let mut plan = Plan { status: rollout.status.clone().unwrap_or_default(), ..Default::default() };
    if !rollout.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER) {
        return plan;
    }
    let name = rollout_name(rollout);
    let replicas = rollout.spec.replicas.unwrap_or(1);
    let mut done = true;
    if let (Some(reference), Some(workload)) = (&rollout.spec.workload_ref, &observed.workload) {
        let scaled_down_by_us = matches!(reference.scale_down.as_deref(), Some("onsuccess" | "progressively"));
        if let (true, Some(current)) = (scaled_down_by_us, workload.deployment_replicas) {
            if current < replicas {
                plan.actions.push(Action::ScaleWorkload { name: reference.name.clone(), replicas });
                plan.events.push(Event {
                    warning: false,
                    reason: "WorkloadRestored",
                    message: format!(
                        "Scaled Deployment {} back to {replicas} before deleting the Rollout",
                        reference.name
                    ),
                });
            }
            let deleting_since = rollout.metadata.deletion_timestamp.as_ref().map_or(observed.now, |t| t.0);
            let gave_up = observed.now >= deleting_since + seconds(RESTORE_TIMEOUT);
            if workload.deployment_available < replicas && !gave_up {
                done = false;
                plan.status.message = Some(format!(
                    "deleting: waiting for Deployment {}: {} of {replicas} pods available",
                    reference.name, workload.deployment_available
                ));
            }
        }
    }
    for service in observed.services.values() {
        if service.managed_by.as_deref() == Some(name) {
            plan.actions.push(Action::SetServiceSelector {
                service: service.name.clone(),
                hash: None,
                changed_at: observed.now,
            });
        }
    }
    if done {
        plan.actions.push(Action::RemoveFinalizer);
    }
    plan
}

/// Planning state for one valid Rollout.
struct Planner<'a> {
    observed: &'a Observed,
    valid: ValidRollout<'a>,
    now: Timestamp,
    replicas: i32,
    hash: String,
    step_hash: String,
    /// ReplicaSet of the current template, if it exists.
    new_rs: Option<&'a ReplicaSetView>,
    before: RolloutStatus,
    next: RolloutStatus,
    conditions: Vec<crate::api::RolloutCondition>,
    actions: Vec<Action>,
    events: Vec<Event>,
    requeue: Option<Timestamp>,
    /// The first thing this rollout waits for, for `status.message`.
    waiting: Option<String>,
    /// Something a person asked for that this plan did not do, and why: leads `status.message`.
    notice: Option<String>,
    /// Desired `spec.replicas` of the ReplicaSets this plan sizes, by name.
    sizes: BTreeMap<String, i32>,
    created_rs: bool,
    /// The stable ReplicaSet was deleted by someone: everything holds until it is back.
    stable_missing: bool,
    pause_expired_at: Option<Timestamp>,
    /// The canary weight this plan writes to the VirtualServices, if it changes them.
    written_weight: Option<i32>,
}

impl<'a> Planner<'a> {
    fn new(observed: &'a Observed, valid: ValidRollout<'a>, before: RolloutStatus) -> Self {
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
            sizes: BTreeMap::new(),
            created_rs: false,
            stable_missing: false,
            pause_expired_at: None,
            written_weight: None,
        }
    }

    fn run(mut self) -> Plan {
        if self.observed.rollout.spec.replicas.is_none() {
            self.actions.push(Action::DefaultReplicas);
        }
        self.ensure_finalizer();
        self.adopt_orphans();
        self.reset_on_change();
        self.initial_deploy();
        self.abort_and_retry();
        self.full_promotion();
        self.recreate_stable();
        self.advance_step();
        self.size_replica_sets();
        self.route_services();
        self.route_traffic();
        self.advance_after_traffic();
        self.promote();
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

    // ---- small helpers -------------------------------------------------------------------

    fn name(&self) -> &'a str {
        rollout_name(&self.observed.rollout)
    }

    fn steps_len(&self) -> i32 {
        i32::try_from(self.valid.steps.len()).unwrap_or(i32::MAX)
    }

    fn index(&self) -> usize {
        usize::try_from(self.next.current_step_index.unwrap_or(0).max(0)).unwrap_or(0)
    }

    fn at_end(&self) -> bool {
        self.index() >= self.valid.steps.len()
    }

    fn aborted(&self) -> bool {
        self.next.abort == Some(true)
    }

    fn paused_by_user(&self) -> bool {
        self.observed.rollout.spec.paused == Some(true)
    }

    fn pause_conditions(&self) -> &[PauseCondition] {
        self.next.pause_conditions.as_deref().unwrap_or_default()
    }

    fn stable_hash(&self) -> Option<&str> {
        self.next.stable_rs.as_deref()
    }

    fn rs_by_hash(&self, hash: &str) -> Option<&'a ReplicaSetView> {
        self.observed.replica_sets.iter().find(|rs| rs.hash == hash && !rs.deleting)
    }

    /// The stable ReplicaSet, when it differs from the current template's.
    fn stable_rs(&self) -> Option<&'a ReplicaSetView> {
        self.stable_hash().filter(|h| *h != self.hash).and_then(|h| self.rs_by_hash(h))
    }

    fn promoted(&self) -> bool {
        self.stable_hash() == Some(self.hash.as_str())
    }

    fn routed(&self) -> bool {
        self.valid.traffic_routed()
    }

    fn new_available(&self) -> i32 {
        self.new_rs.map_or(0, |rs| rs.available)
    }

    /// The revision of the current template: its ReplicaSet's, unless an older revision is re-used
    /// (a rollback), which makes it the newest.
    fn revision(&self) -> u64 {
        let newest = self.max_other_revision() + 1;
        self.new_rs.and_then(|rs| rs.revision).filter(|r| *r >= newest).unwrap_or(newest)
    }

    fn max_other_revision(&self) -> u64 {
        self.observed
            .replica_sets
            .iter()
            .filter(|rs| rs.hash != self.hash)
            .filter_map(|rs| rs.revision)
            .max()
            .unwrap_or(0)
    }

    /// `now` as status records it: whole seconds, so what this plan decides from a time it
    /// wrote is what the next plan decides from the stored one.
    fn stamp(&self) -> Time {
        Time(Timestamp::from_second(self.now.as_second()).unwrap_or(self.now))
    }

    fn wait(&mut self, message: impl Into<String>) {
        if self.waiting.is_none() {
            self.waiting = Some(message.into());
        }
    }

    fn requeue_at(&mut self, at: Timestamp) {
        self.requeue = Some(self.requeue.map_or(at, |current| current.min(at)));
    }

    fn event(&mut self, reason: &'static str, message: String) {
        self.events.push(Event { warning: false, reason, message });
    }

    fn settle(&self) -> SignedDuration {
        let rollout_seconds = self.valid.canary.traffic_settle_seconds;
        rollout_seconds.map_or_else(
            || SignedDuration::try_from(self.observed.config.settle).unwrap_or_default(),
            |s| seconds(i64::from(s)),
        )
    }

    /// The last traffic change: what status says, or what the objects it went through say, as a
    /// controller may have stopped between that write and the status write.
    fn last_traffic_change(&self) -> Option<Timestamp> {
        let recorded = self.next.canary.as_ref().and_then(|c| c.traffic_changed_at.as_ref()).map(|t| t.0);
        let services = self.valid.services.into_iter().flat_map(|(stable, canary)| [stable, canary]);
        let on_services = services.filter_map(|name| self.observed.services.get(name)?.traffic_changed_at);
        let available = self.observed.virtual_services.as_ref();
        let on_routes = self
            .valid
            .virtual_services
            .iter()
            .filter_map(|vs| available?.get(&(vs.namespace.clone(), vs.name.clone()))?.traffic_changed_at);
        recorded.into_iter().chain(on_services).chain(on_routes).max()
    }

    /// True when the last traffic change is at least `settle` old; otherwise waits for it.
    fn traffic_settled(&mut self, next_move: &str) -> bool {
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
    fn traffic_moved(&mut self) {
        self.next.canary.get_or_insert_with(CanaryStatus::default).traffic_changed_at = Some(MicroTime(self.now));
    }

    // ---- phases ----------------------------------------------------------------------------

    fn ensure_finalizer(&mut self) {
        let rollout = &self.observed.rollout;
        let restores_workload = rollout
            .spec
            .workload_ref
            .as_ref()
            .is_some_and(|w| matches!(w.scale_down.as_deref(), Some("onsuccess" | "progressively")));
        let has = rollout.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER);
        if (restores_workload || self.valid.services.is_some()) && !has {
            self.actions.push(Action::AddFinalizer);
        }
    }

    fn adopt_orphans(&mut self) {
        for rs in self.observed.replica_sets.iter().filter(|rs| !rs.owned && !rs.deleting) {
            self.actions.push(Action::AdoptReplicaSet { name: rs.name.clone() });
        }
    }

    /// A new template or new steps start the steps again (a template back at stable skips them).
    fn reset_on_change(&mut self) {
        let template_changed = self.before.current_pod_hash.as_deref() != Some(self.hash.as_str());
        let steps_changed = self.before.current_step_hash.as_deref() != Some(self.step_hash.as_str());
        if !template_changed && !steps_changed {
            return;
        }
        let next = &mut self.next;
        next.current_pod_hash = Some(self.hash.clone());
        next.current_step_hash = Some(self.step_hash.clone());
        next.current_step_index = (!self.valid.steps.is_empty()).then_some(0);
        next.pause_conditions = None;
        next.controller_pause = None;
        next.promote_full = None;
        if next.abort.is_some() {
            next.abort = None;
        }
        next.aborted_at = None;
        let back_to_stable = self.before.stable_rs.as_deref() == Some(self.hash.as_str());
        if back_to_stable && !self.valid.steps.is_empty() {
            self.next.current_step_index = Some(self.steps_len());
            if template_changed {
                self.event("SkipSteps", "Rollback to stable ReplicaSets".into());
            }
        }
        if template_changed && self.before.stable_rs.is_some() && !back_to_stable {
            let revision = self.max_other_revision() + 1;
            self.event(
                "RolloutNotCompleted",
                format!("Rollout not completed, started update to revision {revision} ({})", self.hash),
            );
        }
    }

    /// The first revision becomes stable at once: there is nothing to compare it with.
    fn initial_deploy(&mut self) {
        if self.next.stable_rs.is_some() {
            return;
        }
        self.next.stable_rs = Some(self.hash.clone());
        self.next.current_step_index = (!self.valid.steps.is_empty()).then_some(self.steps_len());
        self.next.pause_conditions = None;
        self.next.controller_pause = None;
        let message =
            format!("Rollout completed update to revision {} ({}): Initial deploy", self.revision(), self.hash);
        self.event("RolloutCompleted", message);
    }

    fn abort_and_retry(&mut self) {
        if self.aborted() && self.next.promote_full == Some(true) {
            // `promote --full` overrides an abort, as upstream: the update goes ahead in full.
            self.next.abort = None;
        }
        if self.aborted() && self.promoted() {
            // Nothing in flight to abort: the new revision is stable already (its Service switch
            // may be settling). Going back is an undo, not an abort.
            self.next.abort = None;
            let message = format!(
                "abort ignored: revision {} ({}) is already stable; use undo to go back",
                self.revision(),
                self.hash
            );
            self.notice = Some(message.clone());
            self.events.push(Event { warning: true, reason: "RolloutAbortIgnored", message });
        }
        if self.aborted() {
            if !self.valid.steps.is_empty() {
                self.next.current_step_index = Some(0);
            }
            self.next.pause_conditions = None;
            self.next.controller_pause = None;
            self.next.promote_full = None;
            if self.next.aborted_at.is_none() {
                self.next.aborted_at = Some(self.stamp());
                let message = format!("Rollout aborted update to revision {}", self.revision());
                self.events.push(Event { warning: true, reason: "RolloutAborted", message });
            }
        } else if self.next.aborted_at.is_some() {
            self.next.aborted_at = None;
            let message = "Retrying Rollout after abort";
            cond::set(&mut self.conditions, cond::PROGRESSING, "Unknown", "RolloutRetry", message, self.now);
        }
    }

    fn full_promotion(&mut self) {
        if self.next.promote_full != Some(true) {
            return;
        }
        if self.promoted() {
            self.next.promote_full = None;
            return;
        }
        self.next.current_step_index = (!self.valid.steps.is_empty()).then_some(self.steps_len());
        self.next.pause_conditions = None;
        self.next.controller_pause = None;
    }

    /// A scaling event (spec.replicas changed since the ReplicaSets were sized) re-splits the
    /// pods without advancing a step.
    fn scaling_event(&self) -> bool {
        [self.new_rs, self.stable_rs()]
            .into_iter()
            .flatten()
            .filter(|rs| rs.spec_replicas > 0)
            .any(|rs| rs.desired_replicas_annotation.is_some_and(|d| d != self.replicas))
    }

    /// Steps do not move while aborted, promoted, finished, paused by a person or rescaling.
    fn steps_held(&self) -> bool {
        self.aborted()
            || self.promoted()
            || self.at_end()
            || self.paused_by_user()
            || self.scaling_event()
            || self.stable_missing
    }

    /// The stable ReplicaSet deleted by hand (or by a mistaken cleanup) is created again from its
    /// recorded template, at full size; until it is back, steps, sizes and weights hold.
    fn recreate_stable(&mut self) {
        let Some(stable) = self.stable_hash().filter(|h| *h != self.hash).map(str::to_owned) else {
            return;
        };
        if self.rs_by_hash(&stable).is_some() {
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
            self.replicas,
            self.replicas,
            &metadata::desired(self.valid.canary, Role::Stable),
        );
        self.actions.push(Action::CreateReplicaSet(Box::new(rs)));
        self.events.push(Event {
            warning: true,
            reason: "ReplicaSetRecreated",
            message: format!("Created the stable ReplicaSet {name} again: it was deleted"),
        });
        self.wait(format!("waiting for stable ReplicaSet {name}, created again after it was deleted"));
    }

    /// Completes the current step if it is done. Before the writes are planned, so a pause that
    /// expired hands over to the next step's sizing and weights in this same plan.
    fn advance_step(&mut self) {
        if self.steps_held() {
            return;
        }
        let index = self.index();
        let step = &self.valid.steps[index];
        let total = self.valid.steps.len();
        let done = if self.at_match_traffic_weight() {
            true
        } else if let Some(pause) = &step.pause {
            self.pause_done(pause.duration.as_ref(), index, total)
        } else if step.set_weight.is_some() || step.set_canary_scale.is_some() {
            self.sizing_step_done(false)
        } else {
            false
        };
        if done {
            self.complete_step(index);
        }
    }

    /// Once the writes are planned: a setWeight step whose weight this plan writes is done, as
    /// the status is written only after every action succeeded. The step, its weights and the
    /// next pause then land in one status write instead of two. A step entered by this plan
    /// says here what it waits for.
    fn advance_after_traffic(&mut self) {
        if self.steps_held() || self.at_match_traffic_weight() {
            return;
        }
        let index = self.index();
        let step = &self.valid.steps[index];
        if step.set_weight.is_none() && step.set_canary_scale.is_none() {
            return;
        }
        let done = self.sizing_step_done(true);
        if done && step.set_weight.is_some() && self.written_weight.is_some() {
            self.complete_step(index);
        }
    }

    /// Whether the current setWeight or setCanaryScale step has its pods and weights; if not,
    /// what it waits for (the weights only once this plan's own writes are known).
    fn sizing_step_done(&mut self, writes_planned: bool) -> bool {
        let index = self.index();
        let total = self.valid.steps.len();
        let wants_weight = self.valid.steps[index].set_weight.is_some() && self.routed();
        let (canary, stable) = self.targets();
        let at_counts = self.at_counts(canary, stable);
        let target = steps::set_weight_at(self.valid.steps, index);
        let weight_ok = !wants_weight || self.weights_after_writes().iter().all(|w| *w == target);
        if !at_counts {
            self.wait_for_counts(canary, stable);
        } else if !weight_ok && writes_planned {
            self.wait(format!("step {index}/{total}: waiting for the VirtualService weights to be set"));
        }
        at_counts && weight_ok
    }

    fn complete_step(&mut self, index: usize) {
        let total = self.valid.steps.len();
        let step = &self.valid.steps[index];
        let description = steps::describe_step(step);
        self.next.current_step_index = Some(i32::try_from(index + 1).unwrap_or(i32::MAX));
        self.event("RolloutStepCompleted", format!("Rollout step {}/{total} completed ({description})", index + 1));
        let had_pause = !self.pause_conditions().is_empty() || self.next.controller_pause == Some(true);
        if had_pause {
            self.next.pause_conditions = None;
            self.next.controller_pause = None;
            self.event("RolloutResumed", "Rollout is resumed".into());
        }
        // Entering a pause step starts its clock now.
        if let Some(next_step) = self.valid.steps.get(index + 1)
            && next_step.pause.is_some()
        {
            self.enter_pause();
            let duration = next_step.pause.as_ref().and_then(|p| p.duration.as_ref());
            self.pause_done(duration, index + 1, total);
        }
    }

    fn enter_pause(&mut self) {
        self.next.pause_conditions =
            Some(vec![PauseCondition { reason: "CanaryPauseStep".into(), start_time: self.stamp() }]);
        self.next.controller_pause = Some(true);
        self.event("RolloutPaused", "Rollout is paused (CanaryPauseStep)".into());
    }

    /// Whether the pause step at `index` is over: promoted by a person, or its duration has
    /// passed. Messages show it as "step index/total", like the plugin.
    fn pause_done(
        &mut self,
        duration: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
        index: usize,
        total: usize,
    ) -> bool {
        let started = self.pause_conditions().iter().find(|c| c.reason == "CanaryPauseStep").map(|c| c.start_time.0);
        let Some(started) = started else {
            if self.next.controller_pause == Some(true) {
                return true; // the pause condition was cleared: promoted
            }
            self.enter_pause();
            return self.pause_done(duration, index, total);
        };
        let Some(duration) = duration.and_then(steps::parse_duration) else {
            self.wait(format!("CanaryPauseStep: step {index}/{total}: paused until promoted"));
            return false;
        };
        let ends = later(started, SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX));
        if self.now >= ends {
            self.pause_expired_at = Some(ends);
            return true;
        }
        self.requeue_at(ends);
        self.wait(format!("CanaryPauseStep: step {index}/{total}: paused until {ends}"));
        false
    }

    /// The canary weight the replicas are sized for.
    fn replica_weight(&self) -> i32 {
        if self.aborted() { 0 } else { steps::set_weight_at(self.valid.steps, self.index()) }
    }

    fn current_step(&self) -> Option<&'a crate::api::CanaryStep> {
        self.valid.steps.get(self.index())
    }

    /// A `setCanaryScale{matchTrafficWeight}` step only hands the canary's size back to the
    /// weights; it sizes nothing itself, so the canary never drops to zero on the way.
    fn at_match_traffic_weight(&self) -> bool {
        !self.aborted()
            && self
                .current_step()
                .and_then(|s| s.set_canary_scale.as_ref())
                .is_some_and(|s| s.match_traffic_weight == Some(true))
    }

    /// Whether the canary Service selects the current template's pods now.
    fn canary_service_on_canary(&self) -> bool {
        self.valid.services.is_some_and(|(_, canary)| self.service_hash(canary) == Some(self.hash.as_str()))
    }

    /// Pods the canary should end up with at this step (before any hold).
    fn canary_goal(&self) -> i32 {
        if self.stable_rs().is_none() {
            return self.replicas;
        }
        if self.routed() {
            return self.routed_targets().0;
        }
        let (surge, _) = replicas::fenceposts(
            self.valid.canary.max_surge.as_ref(),
            self.valid.canary.max_unavailable.as_ref(),
            self.replicas,
        );
        replicas::weighted_split(self.replicas, self.replica_weight(), surge).0
    }

    fn routed_targets(&self) -> (i32, i32) {
        let canary = self.valid.canary;
        let explicit = (!self.aborted()).then(|| steps::canary_scale_at(self.valid.steps, self.index())).flatten();
        let weight = explicit.and_then(|s| s.weight).unwrap_or_else(|| self.replica_weight());
        let observed = self.observed_weights();
        let actual = observed.first().map(|w| (*w, 100 - *w));
        replicas::routed_canary(RoutedCanary {
            replicas: self.replicas,
            weight,
            explicit_canary: explicit.and_then(|s| s.replicas),
            min_pods_per_replica_set: canary.min_pods_per_replica_set,
            dynamic_stable_scale: canary.dynamic_stable_scale == Some(true),
            actual_weights: actual,
            aborted: self.aborted(),
        })
    }

    /// Desired pods of the canary (current template) and stable ReplicaSets.
    fn targets(&self) -> (i32, i32) {
        let (canary_pods, stable_pods) = self.unheld_targets();
        let current = self.new_rs.map_or(0, |rs| rs.spec_replicas);
        // Pods a Service still selects stay until it has moved away (see `route_services`).
        let hold = self.at_match_traffic_weight()
            || self.stable_rs().is_some() && self.canary_goal() == 0 && self.canary_service_on_canary()
            || self.aborted() && self.routed() && !self.abort_scale_down_due();
        (if hold { canary_pods.max(current) } else { canary_pods }, stable_pods)
    }

    fn unheld_targets(&self) -> (i32, i32) {
        // The canary is not grown to stand in for a deleted stable, unless a full promotion asks.
        if self.stable_missing && self.next.promote_full != Some(true) {
            return (self.new_rs.map_or(0, |rs| rs.spec_replicas), self.replicas);
        }
        let Some(stable) = self.stable_rs() else {
            return (self.replicas, 0);
        };
        let canary = self.valid.canary;
        if self.routed() {
            return self.routed_targets();
        }
        let (surge, unavailable) =
            replicas::fenceposts(canary.max_surge.as_ref(), canary.max_unavailable.as_ref(), self.replicas);
        let scale = |rs: &ReplicaSetView| Scale { spec: rs.spec_replicas, available: rs.available };
        let others_spec = self.others().map(|rs| rs.spec_replicas).sum();
        replicas::basic_canary(BasicCanary {
            replicas: self.replicas,
            weight: self.replica_weight(),
            surge,
            unavailable,
            canary: self.new_rs.map(scale),
            stable: Some(scale(stable)),
            others_spec,
        })
    }

    fn others(&self) -> impl Iterator<Item = &'a ReplicaSetView> + '_ {
        let stable = self.stable_hash().map(str::to_owned);
        self.observed
            .replica_sets
            .iter()
            .filter(move |rs| rs.hash != self.hash && Some(&rs.hash) != stable.as_ref() && !rs.deleting)
    }

    /// The canary and stable have the pods this step asks for, all available.
    fn at_counts(&self, canary: i32, stable: i32) -> bool {
        let new_ok =
            self.new_rs.is_some_and(|rs| rs.spec_replicas == canary && rs.available >= canary && rs.status_current);
        let dynamic = self.routed() && self.valid.canary.dynamic_stable_scale == Some(true);
        let stable_ok =
            dynamic || self.stable_rs().is_none_or(|rs| rs.spec_replicas == stable && rs.status_replicas == stable);
        let others_ok = self.routed() || self.others().all(|rs| rs.available == 0);
        new_ok && stable_ok && others_ok
    }

    fn wait_for_counts(&mut self, canary: i32, stable: i32) {
        let new_name = self.new_rs.map_or_else(|| format!("{}-{}", self.name(), self.hash), |rs| rs.name.clone());
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

    /// An aborted, traffic-routed canary is scaled down once its traffic is gone and
    /// abortScaleDownDelaySeconds have passed.
    fn abort_scale_down_due(&self) -> bool {
        let Some(rs) = self.new_rs else { return true };
        rs.scale_down_deadline.is_some_and(|deadline| self.now >= deadline)
            || self.valid.canary.abort_scale_down_delay_seconds == Some(0) && self.canary_traffic_gone()
    }

    /// No weight and no Service sends traffic to the current template's pods.
    fn canary_traffic_gone(&self) -> bool {
        let weights_zero = self.observed_weights().iter().all(|w| *w == 0);
        let selected = self.valid.services.is_some_and(|(stable, canary)| {
            [stable, canary].iter().any(|s| self.service_hash(s) == Some(self.hash.as_str()))
        });
        weights_zero && !selected
    }

    fn size_replica_sets(&mut self) {
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
                        self.valid
                            .canary
                            .abort_scale_down_delay_seconds
                            .map_or(DEFAULT_ABORT_SCALE_DOWN_DELAY as i32, |d| d),
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

    fn size(&mut self, rs: &ReplicaSetView, replicas: i32) {
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

    fn patch_rs(&mut self, rs: &ReplicaSetView, replicas: i32, annotations: BTreeMap<String, Option<String>>) {
        let resize = rs.spec_replicas != replicas;
        if !resize && annotations.is_empty() {
            return;
        }
        if resize {
            let direction = if replicas > rs.spec_replicas { "up" } else { "down" };
            let revision = rs.revision.map_or_else(String::new, |r| format!(" (revision {r})"));
            self.event(
                "ScalingReplicaSet",
                format!("Scaled {direction} ReplicaSet {}{revision} from {} to {replicas}", rs.name, rs.spec_replicas),
            );
        }
        self.sizes.insert(rs.name.clone(), replicas);
        self.actions.push(Action::PatchReplicaSet {
            name: rs.name.clone(),
            replicas: resize.then_some(replicas),
            annotations,
        });
    }

    fn set_deadline(&mut self, name: &str, deadline: Option<Timestamp>) {
        let value = deadline.map(|d| d.to_string());
        let annotations = BTreeMap::from([(SCALE_DOWN_DEADLINE_ANNOTATION.to_string(), value)]);
        self.actions.push(Action::PatchReplicaSet { name: name.into(), replicas: None, annotations });
    }

    fn create_new_rs(&mut self, replicas: i32) {
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
        self.event("RolloutUpdated", format!("Rollout updated to revision {revision}"));
        self.event("NewReplicaSetCreated", format!("Created ReplicaSet {name} (revision {revision})"));
        self.sizes.insert(name.clone(), replicas);
        self.created_rs = true;
        self.wait(format!("waiting for canary ReplicaSet {name}: 0 of {replicas} pods available"));
    }

    /// The hash a Service selects now.
    fn service_hash(&self, service: &str) -> Option<&'a str> {
        self.observed.services.get(service).and_then(|s| s.selector.get(POD_TEMPLATE_HASH_LABEL)).map(String::as_str)
    }

    /// Whether `service` selects `hash` once this plan's earlier actions are done (actions run in
    /// order, and a failed one stops the rest).
    fn selects_after_writes(&self, service: &str, hash: &str) -> bool {
        let pointed_now = self.actions.iter().any(|action| action.points_service_at(service, hash));
        pointed_now || self.service_hash(service) == Some(hash)
    }

    /// Points a Service at `hash` when that ReplicaSet can serve: some available pods, or all of
    /// them when the Service is not managed yet.
    fn point_service(&mut self, service: &str, hash: &str) -> bool {
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
        self.event("SwitchService", format!("Switched selector for service '{service}' from '{from}' to '{hash}'"));
        true
    }

    /// Services this Rollout manages but no longer names get their plain selector back.
    fn release_services(&mut self) {
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

    fn route_services(&mut self) {
        self.release_services();
        let Some((stable_service, canary_service)) = self.valid.services else {
            return;
        };
        let stable = self.stable_hash().unwrap_or(&self.hash).to_string();
        // The stable Service selects the stable pods, and is put back when someone changes it.
        // It moves to the new pods at promotion (`promote`); one whose status write is still to
        // come has moved it already, and that stands.
        let promoting =
            self.at_end() && !self.aborted() && self.service_hash(stable_service) == Some(self.hash.as_str());
        if !promoting && self.point_service(stable_service, &stable) && self.routed() {
            self.traffic_moved();
        }
        // After an abort, or while the step wants no canary pods, the canary Service serves the
        // stable pods.
        let canary_home = self.aborted() || self.stable_rs().is_some() && self.canary_goal() == 0;
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

    /// Canary weight of each managed route, in order, across the VirtualServices.
    fn observed_weights(&self) -> Vec<i32> {
        let (Some((_, canary)), Some(available)) = (self.valid.services, self.observed.virtual_services.as_ref())
        else {
            return Vec::new();
        };
        self.valid
            .virtual_services
            .iter()
            .filter_map(|vs| {
                available
                    .get(&(vs.namespace.clone(), vs.name.clone()))
                    .map(|found| traffic::canary_weights(&found.spec, &vs.routes, canary))
            })
            .flatten()
            .collect()
    }

    /// The canary weights once this plan's writes are done: the status is written only after
    /// every action succeeded, so a weight this plan writes counts as set.
    fn weights_after_writes(&self) -> Vec<i32> {
        let observed = self.observed_weights();
        match self.written_weight {
            Some(weight) => vec![weight; observed.len()],
            None => observed,
        }
    }

    /// The canary weight the VirtualServices should hold now; `None` leaves them as they are.
    fn desired_weight(&mut self, observed: &[i32]) -> Option<i32> {
        let current = observed.first().copied().unwrap_or(0);
        let (stable_service, canary_service) = self.valid.services?;
        if self.promoted() {
            // Back to the stable Service once it selects the new pods and that has settled.
            if current == 0 && observed.iter().all(|w| *w == 0) {
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
        if self.paused_by_user() {
            return None;
        }
        let index = self.index();
        if self.at_end() {
            let ready =
                self.new_rs.is_some_and(|rs| rs.spec_replicas >= self.replicas && rs.available >= self.replicas);
            if !ready {
                self.wait_for_counts(self.replicas, self.replicas);
            }
            return Some(if ready { 100 } else { steps::set_weight_before(self.valid.steps, index) });
        }
        let (canary, stable) = self.targets();
        Some(if self.at_counts(canary, stable) {
            steps::set_weight_at(self.valid.steps, index)
        } else {
            steps::set_weight_before(self.valid.steps, index)
        })
    }

    /// Whether a Service selects available pods once this plan's writes are done.
    fn serves_after_writes(&self, service: &str) -> bool {
        let pointed = self.actions.iter().rev().find_map(|action| match action {
            Action::SetServiceSelector { service: s, hash, .. } if s == service => Some(hash.as_deref()),
            _ => None,
        });
        match pointed.unwrap_or_else(|| self.service_hash(service)) {
            Some(hash) => self.rs_by_hash(hash).is_some_and(|rs| rs.available > 0),
            None => self.observed.replica_sets.iter().any(|rs| rs.owned && rs.available > 0),
        }
    }

    /// No weight moves onto a Service that selects no available pods. While the stable Service
    /// selects none (its ReplicaSet is being repaired), nothing moves at all unless a full
    /// promotion was asked for: the canary is not proven yet.
    fn may_move_traffic(&mut self, current: i32, desired: i32) -> bool {
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

    fn route_traffic(&mut self) {
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
        if let (Some(desired), Some(available)) = (desired, self.observed.virtual_services.as_ref()) {
            let mut changed = false;
            for vs in &self.valid.virtual_services {
                let Some(found) = available.get(&(vs.namespace.clone(), vs.name.clone())) else {
                    continue;
                };
                let mut patch = traffic::weight_patch(&found.spec, &vs.routes, stable_service, canary_service, desired);
                if !patch.is_empty() {
                    patch.extend(traffic::stamp_patch(found, self.now));
                    changed = true;
                    self.actions.push(Action::SetVirtualServiceWeights {
                        namespace: vs.namespace.clone(),
                        name: vs.name.clone(),
                        patch,
                        canary_weight: desired,
                    });
                }
            }
            if changed {
                let message = if current == desired {
                    format!("Traffic weight set to {desired}")
                } else {
                    format!("Traffic weight updated from {current} to {desired}")
                };
                self.event("TrafficWeightUpdated", message);
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
                weight: 100 - weight,
                service_name: Some(stable_service.into()),
                pod_template_hash: stable_hash,
            },
            verified: None,
        };
        self.next.canary.get_or_insert_with(CanaryStatus::default).weights = Some(weights);
    }

    /// Makes the current template stable once the steps are done and it serves everyone.
    fn promote(&mut self) {
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
            let all_traffic = self.weights_after_writes().iter().all(|w| *w == 100);
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
        self.next.pause_conditions = None;
        self.next.controller_pause = None;
        self.next.current_step_index = (!self.valid.steps.is_empty()).then_some(self.steps_len());
        let message = format!("Rollout completed update to revision {} ({}): {reason}", self.revision(), self.hash);
        self.event("RolloutCompleted", message);
        if !self.routed() {
            // Basic canary: the stable Service follows at once, and the old pods go within budget.
            if let Some((stable_service, _)) = self.valid.services {
                let hash = self.hash.clone();
                self.point_service(stable_service, &hash);
            }
        }
    }

    /// Hashes that a Service selects or a weight still reaches: their pods must stay.
    fn referenced(&self, hash: &str) -> bool {
        let by_service = self.valid.services.is_some_and(|(stable, canary)| {
            [stable, canary].iter().any(|service| self.service_hash(service) == Some(hash))
        });
        by_service || self.stable_hash() == Some(hash) || hash == self.hash
    }

    fn scale_down_others(&mut self) {
        let mut others: Vec<&'a ReplicaSetView> = self
            .others()
            .filter(|rs| {
                (rs.spec_replicas > 0 || rs.scale_down_deadline.is_some()) && !self.sizes.contains_key(&rs.name)
            })
            .collect();
        others.sort_by_key(|rs| std::cmp::Reverse(rs.revision));
        if self.routed() {
            let delay =
                i64::from(self.valid.canary.scale_down_delay_seconds.unwrap_or(DEFAULT_SCALE_DOWN_DELAY as i32));
            let dynamic = self.valid.canary.dynamic_stable_scale == Some(true);
            let limit = self
                .valid
                .canary
                .scale_down_delay_revision_limit
                .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(0));
            let mut delayed = 0;
            for rs in others {
                if self.referenced(&rs.hash) {
                    continue;
                }
                match rs.scale_down_deadline {
                    Some(deadline) if self.now < deadline && rs.spec_replicas > 0 && delayed < limit => {
                        delayed += 1;
                        self.requeue_at(deadline);
                    }
                    Some(_) => {
                        self.patch_rs(rs, 0, BTreeMap::from([(SCALE_DOWN_DEADLINE_ANNOTATION.to_string(), None)]))
                    }
                    None if dynamic || delay == 0 || delayed >= limit => self.patch_rs(rs, 0, BTreeMap::new()),
                    None => {
                        delayed += 1;
                        let deadline = self.now + seconds(delay);
                        self.set_deadline(&rs.name, Some(deadline));
                        self.requeue_at(deadline);
                    }
                }
            }
            return;
        }
        // Basic canary: older pods go first, within maxUnavailable.
        let (_, unavailable) = replicas::fenceposts(
            self.valid.canary.max_surge.as_ref(),
            self.valid.canary.max_unavailable.as_ref(),
            self.replicas,
        );
        let total_available: i32 = self.observed.replica_sets.iter().map(|rs| rs.available).sum();
        let mut budget = replicas::old_scale_down_budget(total_available, self.replicas, unavailable);
        for rs in others {
            if rs.spec_replicas == 0 {
                continue;
            }
            // Pods that never became available cost no availability.
            let unavailable_pods = (rs.spec_replicas - rs.available).max(0);
            let shrink = (unavailable_pods + budget.min(rs.available)).min(rs.spec_replicas);
            budget -= shrink - unavailable_pods;
            if shrink > 0 {
                self.patch_rs(rs, rs.spec_replicas - shrink, BTreeMap::new());
            } else if self.waiting.is_none() {
                self.wait(format!("waiting for old ReplicaSet {} to scale down", rs.name));
            }
        }
    }

    /// The role of the pods of `hash`: the current template's are stable once promoted, canary
    /// until then; the stable's are stable; others have none.
    fn role(&self, hash: &str) -> Role {
        if hash == self.hash {
            if self.stable_rs().is_some() { Role::Canary } else { Role::Stable }
        } else if self.stable_hash() == Some(hash) {
            Role::Stable
        } else {
            Role::Other
        }
    }

    /// Ephemeral metadata follows each ReplicaSet's role: template first (so new pods have it),
    /// then the pods, then the record, so a crash in between repeats the whole change.
    fn ephemeral_metadata(&mut self) {
        for rs in self.observed.replica_sets.iter().filter(|rs| rs.owned && !rs.deleting) {
            let desired = metadata::desired(self.valid.canary, self.role(&rs.hash));
            if rs.injected == desired {
                continue;
            }
            let change = metadata::change(&rs.injected, &desired);
            let replica_set = rs.name.clone();
            self.actions.push(Action::SetTemplateMetadata { replica_set: replica_set.clone(), change: change.clone() });
            if rs.spec_replicas > 0 || rs.status_replicas > 0 {
                self.actions.push(Action::SetPodMetadata {
                    replica_set: replica_set.clone(),
                    hash: rs.hash.clone(),
                    change,
                });
            }
            let record = BTreeMap::from([(EPHEMERAL_METADATA_ANNOTATION.to_string(), metadata::record(&desired))]);
            self.actions.push(Action::PatchReplicaSet { name: replica_set, replicas: None, annotations: record });
        }
    }

    /// `workloadRef.scaleDown`: keep the referenced Deployment scaled down while the Rollout
    /// serves (on every revision, so a GitOps re-sync of its replicas is undone).
    fn scale_down_workload(&mut self) {
        let Some(reference) = &self.observed.rollout.spec.workload_ref else {
            return;
        };
        let Some(current) = self.observed.workload.as_ref().and_then(|w| w.deployment_replicas) else {
            return;
        };
        // The Rollout serves once its own pods are all available, at any step of any revision.
        let available: i32 = self.observed.replica_sets.iter().filter(|rs| rs.owned).map(|rs| rs.available).sum();
        let serving = available >= self.replicas;
        let target = match reference.scale_down.as_deref() {
            Some("onsuccess") if serving => 0,
            Some("progressively") => (self.replicas - available).max(0),
            _ => return,
        };
        if target < current {
            self.actions.push(Action::ScaleWorkload { name: reference.name.clone(), replicas: target });
            self.event("ScalingWorkload", format!("Scaled Deployment {} from {current} to {target}", reference.name));
        }
    }

    /// `spec.restartAt`: replace pods created before it, a few at a time.
    fn restart_pods(&mut self) {
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
            self.event("RolloutRestarted", format!("Restarted all pods created before {restart_at}"));
            return;
        }
        old.sort_by_key(|p| p.created);
        let (_, unavailable) = replicas::fenceposts(
            self.valid.canary.max_surge.as_ref(),
            self.valid.canary.max_unavailable.as_ref(),
            self.replicas,
        );
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

    /// The Rollout's revision follows its current ReplicaSet, and its workload-generation
    /// annotation the referenced workload, as upstream writes them (Argo CD's health check waits
    /// for status.workloadObservedGeneration to reach that annotation).
    fn annotate_rollout(&mut self) {
        let has_revision = self.new_rs.is_some() || self.created_rs;
        let desired = [
            (REVISION_ANNOTATION, has_revision.then(|| self.revision().to_string())),
            (
                WORKLOAD_GENERATION_ANNOTATION,
                self.observed.workload.as_ref().and_then(|w| w.generation).map(|g| g.to_string()),
            ),
        ];
        let current = self.observed.rollout.metadata.annotations.as_ref();
        let annotations: BTreeMap<String, Option<String>> = desired
            .into_iter()
            .filter(|(key, value)| current.and_then(|a| a.get(*key)) != value.as_ref())
            .filter(|(key, value)| value.is_some() || *key == WORKLOAD_GENERATION_ANNOTATION)
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        if !annotations.is_empty() {
            self.actions.push(Action::AnnotateRollout { annotations });
        }
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond revisionHistoryLimit.
    fn clean_up_history(&mut self) {
        let limit = self
            .observed
            .rollout
            .spec
            .revision_history_limit
            .map_or(DEFAULT_REVISION_HISTORY_LIMIT, |l| usize::try_from(l).unwrap_or(0));
        let mut candidates: Vec<&ReplicaSetView> = self.others().filter(|rs| rs.owned).collect();
        if candidates.len() <= limit {
            return;
        }
        candidates.sort_by_key(|rs| (rs.created, rs.revision));
        let excess = candidates.len() - limit;
        for rs in candidates.into_iter().take(excess) {
            if rs.spec_replicas == 0
                && rs.status_replicas == 0
                && rs.status_current
                && !self.sizes.contains_key(&rs.name)
            {
                self.actions.push(Action::DeleteReplicaSet { name: rs.name.clone() });
                self.actions.push(Action::DeleteTemplateRecord { name: rs.name.clone() });
            }
        }
    }

    // ---- status ----------------------------------------------------------------------------

    fn write_status(&mut self) {
        let rs_list = &self.observed.replica_sets;
        let sum = |f: fn(&ReplicaSetView) -> i32| rs_list.iter().filter(|rs| rs.owned).map(f).sum::<i32>();
        let routed = self.routed();
        let next = &mut self.next;
        next.replicas = Some(sum(|rs| rs.status_replicas));
        next.updated_replicas = Some(self.new_rs.map_or(0, |rs| rs.status_replicas));
        next.ready_replicas = Some(sum(|rs| rs.ready));
        next.available_replicas = Some(sum(|rs| rs.available));
        next.hpa_replicas = next.replicas;
        next.selector = Some(format_selector(&self.valid.selector));
        next.observed_generation = generation(&self.observed.rollout);
        next.workload_observed_generation =
            self.observed.workload.as_ref().and_then(|w| w.generation).map(|g| g.to_string());
        if !routed {
            if let Some(canary) = next.canary.as_mut() {
                canary.weights = None;
                canary.traffic_changed_at = None;
            }
            if next.canary.as_ref().is_some_and(|c| *c == CanaryStatus::default()) {
                next.canary = None;
            }
        }
        self.update_conditions();
        self.update_phase();
        self.next.conditions = Some(std::mem::take(&mut self.conditions));
    }

    fn progressed(&self) -> bool {
        let (b, n) = (&self.before, &self.next);
        self.created_rs
            || b.updated_replicas != n.updated_replicas
            || b.ready_replicas != n.ready_replicas
            || b.available_replicas != n.available_replicas
            || b.replicas != n.replicas
            || b.current_step_index != n.current_step_index
            || b.stable_rs != n.stable_rs
            || b.current_pod_hash != n.current_pod_hash
            || self.actions.iter().any(|a| !matches!(a, Action::AddFinalizer | Action::DefaultReplicas))
    }

    fn healthy(&self) -> bool {
        let n = &self.next;
        let all_updated = n.updated_replicas == Some(self.replicas) && self.new_available() >= self.replicas;
        let old_gone = self.routed() || n.replicas == Some(self.replicas);
        let traffic_home = !self.routed() || self.weights_after_writes().iter().all(|w| *w == 0);
        self.promoted() && all_updated && old_gone && traffic_home && self.waiting.is_none() && !self.paused_by_user()
    }

    fn update_conditions(&mut self) {
        let now = self.now;
        let new_name = self.new_rs.map_or_else(|| format!("{}-{}", self.name(), self.hash), |rs| rs.name.clone());
        let total_available = self.next.available_replicas.unwrap_or(0);
        let paused = self.paused_by_user() || !self.next.pause_conditions.as_deref().unwrap_or_default().is_empty();
        let c = &mut self.conditions;
        cond::remove(c, cond::INVALID_SPEC);
        if total_available >= self.replicas {
            cond::set(c, cond::AVAILABLE, "True", "AvailableReason", "Rollout has minimum availability", now);
        } else {
            cond::set(
                c,
                cond::AVAILABLE,
                "False",
                "AvailableReason",
                "Rollout does not have minimum availability",
                now,
            );
        }
        if paused {
            cond::set(c, cond::PAUSED, "True", "RolloutPaused", "Rollout is paused", now);
        } else if cond::find(c, cond::PAUSED).is_some() {
            cond::set(c, cond::PAUSED, "False", "RolloutPaused", "Rollout is paused", now);
        }
        let completed = self.next.stable_rs.as_deref() == Some(self.hash.as_str());
        let completed_status = if completed { "True" } else { "False" };
        cond::set(c, cond::COMPLETED, completed_status, "RolloutCompleted", "RolloutCompleted", now);
        match self.new_rs.and_then(|rs| rs.failure.clone()) {
            Some((reason, message)) => cond::set(c, cond::REPLICA_FAILURE, "True", &reason, &message, now),
            None => cond::remove(c, cond::REPLICA_FAILURE),
        }

        let healthy = self.healthy();
        let progressed = self.progressed();
        let aborted_message = format!("Rollout aborted update to revision {}", self.revision());
        let c = &mut self.conditions;
        if self.next.abort == Some(true) {
            // An abort keeps the message it started with (it may say why it aborted).
            if cond::find(c, cond::PROGRESSING).is_none_or(|p| p.reason != "RolloutAborted") {
                cond::set(c, cond::PROGRESSING, "False", "RolloutAborted", &aborted_message, now);
            }
        } else if paused {
            cond::set(c, cond::PROGRESSING, "Unknown", "RolloutPaused", "Rollout is paused", now);
        } else if healthy {
            let message = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
            cond::set(c, cond::PROGRESSING, "True", "NewReplicaSetAvailable", &message, now);
        } else if self.created_rs {
            cond::touch(
                c,
                cond::PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{new_name}\""),
                now,
            );
        } else if progressed
            || cond::find(c, cond::PROGRESSING)
                .is_none_or(|p| p.reason == "RolloutPaused" || p.reason == "NewReplicaSetAvailable")
        {
            cond::touch(
                c,
                cond::PROGRESSING,
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{new_name}\" is progressing."),
                now,
            );
        } else {
            self.check_progress_deadline(&new_name);
        }
        let c = &mut self.conditions;
        if healthy {
            cond::set(c, cond::HEALTHY, "True", "RolloutHealthy", "Rollout is healthy", now);
        } else if cond::find(c, cond::HEALTHY).is_some() {
            cond::set(c, cond::HEALTHY, "False", "RolloutHealthy", "Rollout is not healthy", now);
        }
    }

    /// No progress for progressDeadlineSeconds: ProgressDeadlineExceeded, and an abort if asked.
    fn check_progress_deadline(&mut self, new_name: &str) {
        let Some(progressing) = cond::find(&self.conditions, cond::PROGRESSING) else {
            return;
        };
        if progressing.reason == "ProgressDeadlineExceeded" {
            return;
        }
        if self.promoted() && self.waiting.is_none() {
            return;
        }
        let deadline = later(
            progressing.last_update_time.0,
            seconds(i64::from(
                self.observed.rollout.spec.progress_deadline_seconds.unwrap_or(DEFAULT_PROGRESS_DEADLINE as i32),
            )),
        );
        if self.now < deadline {
            self.requeue_at(deadline);
            return;
        }
        let message = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
        if self.observed.rollout.spec.progress_deadline_abort == Some(true) && !self.promoted() {
            let aborted = format!("Rollout aborted update to revision {}: {message}", self.revision());
            cond::set(&mut self.conditions, cond::PROGRESSING, "False", "RolloutAborted", &aborted, self.now);
            self.next.abort = Some(true);
            self.next.aborted_at = Some(self.stamp());
            self.events.push(Event { warning: true, reason: "RolloutAborted", message: aborted });
        } else {
            cond::set(&mut self.conditions, cond::PROGRESSING, "False", "ProgressDeadlineExceeded", &message, self.now);
        }
    }

    fn update_phase(&mut self) {
        let progressing = cond::find(&self.conditions, cond::PROGRESSING).cloned();
        let restarting = self
            .observed
            .rollout
            .spec
            .restart_at
            .as_ref()
            .map(|t| t.0)
            .is_some_and(|at| self.next.restarted_at.as_ref().map(|t| t.0) != Some(at));
        let (phase, message) = if let Some(p) =
            progressing.as_ref().filter(|p| p.reason == "RolloutAborted" || p.reason == "ProgressDeadlineExceeded")
        {
            let pending = self.waiting.as_deref().map(|w| format!("; {w}")).unwrap_or_default();
            ("Degraded", Some(format!("{}: {}{pending}", p.reason, p.message)))
        } else if self.paused_by_user() {
            ("Paused", Some("manually paused".to_string()))
        } else if let Some(pause) = self.next.pause_conditions.as_deref().and_then(|p| p.first()) {
            ("Paused", Some(self.waiting.clone().unwrap_or_else(|| pause.reason.clone())))
        } else if let Some(waiting) = self.waiting.clone() {
            ("Progressing", Some(waiting))
        } else if restarting {
            ("Progressing", Some("rollout is restarting".to_string()))
        } else if self.healthy() {
            ("Healthy", None)
        } else {
            ("Progressing", Some(self.default_progress_message()))
        };
        self.next.phase = Some(phase.into());
        self.next.message = match (self.notice.take(), message) {
            (Some(notice), Some(message)) => Some(format!("{notice}; {message}")),
            (notice, message) => notice.or(message),
        };
    }

    fn default_progress_message(&self) -> String {
        let n = &self.next;
        if let (false, Some(step)) = (self.promoted(), self.current_step()) {
            return format!("step {}/{}: {}", self.index(), self.valid.steps.len(), steps::describe_step(step));
        }
        if n.updated_replicas.unwrap_or(0) < self.replicas {
            "more replicas need to be updated".into()
        } else if n.available_replicas.unwrap_or(0) < n.updated_replicas.unwrap_or(0) {
            "updated replicas are still becoming available".into()
        } else if !self.routed() && n.replicas.unwrap_or(0) > n.updated_replicas.unwrap_or(0) {
            "old replicas are pending termination".into()
        } else {
            "waiting for all steps to complete".into()
        }
    }
}

/// `app=web,tier=front`: the form the scale subresource reports.
pub fn format_selector(selector: &LabelSelector) -> String {
    let labels = selector.match_labels.clone().unwrap_or_default();
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The Rollout as the controlling owner of what it creates.
fn owner(rollout: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: rollout_name(rollout).into(),
        uid: rollout.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The record of a revision's pod template, named like its ReplicaSet.
fn template_record(rollout: &Rollout, template: &PodTemplateSpec, hash: &str, revision: u64) -> ControllerRevision {
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", rollout_name(rollout))),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some([(POD_TEMPLATE_HASH_LABEL.to_string(), hash.to_string())].into()),
            owner_references: Some(vec![owner(rollout)]),
            ..Default::default()
        },
        data: serde_json::to_value(template).ok().map(RawExtension),
        revision: i64::try_from(revision).unwrap_or(i64::MAX),
    }
}

/// The ReplicaSet for a pod template, owned by the Rollout, its pods carrying `ephemeral`.
#[allow(clippy::too_many_arguments)]
fn new_replica_set(
    rollout: &Rollout,
    template: &PodTemplateSpec,
    selector: &LabelSelector,
    hash: &str,
    revision: u64,
    replicas: i32,
    rollout_replicas: i32,
    ephemeral: &PodMetadata,
) -> ReplicaSet {
    let name = rollout_name(rollout);
    let mut template = template.clone();
    let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    // The ReplicaSet's own labels are the template's, without the ephemeral ones.
    let mut labels = template_meta.labels.clone().unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    let template_labels = template_meta.labels.get_or_insert_with(BTreeMap::new);
    template_labels.extend(ephemeral.labels.clone().unwrap_or_default());
    template_labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    if let Some(extra) = &ephemeral.annotations {
        template_meta.annotations.get_or_insert_with(BTreeMap::new).extend(extra.clone());
    }
    let labels = Some(labels);
    let mut selector = selector.clone();
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    // The Rollout's own annotations travel with the ReplicaSet, except bookkeeping ones.
    let skipped = [
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        WORKLOAD_GENERATION_ANNOTATION,
    ];
    let mut annotations: BTreeMap<String, String> = rollout
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !skipped.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION_ANNOTATION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS_ANNOTATION.into(), rollout_replicas.to_string());
    if let Some(record) = metadata::record(ephemeral) {
        annotations.insert(EPHEMERAL_METADATA_ANNOTATION.into(), record);
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: rollout.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner(rollout)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: rollout.spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests;
