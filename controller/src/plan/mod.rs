//! Every decision of the controller, as a pure function: `plan(&Observed) -> Plan`.
//!
//! No client, no clock, no randomness: the time is `Observed::now`. A plan is an ordered list of
//! idempotent actions, the status to write and when to look again. `apply` executes it.

//!
//! The planner's phases live in files named for what they decide; `planner.rs` runs them in
//! order. See `docs/architecture.md` for the map.

mod analysis;
mod conditions;
pub mod defaults;
mod finalize;
pub mod hash;
mod header_routes;
pub mod metadata;
mod objects;
mod observed;
mod planner;
mod promotion;
pub mod reasons;
mod replica_sets;
pub mod replicas;
mod restart;
mod revision;
pub mod routers;
mod scale_down;
mod services;
mod status;
pub mod step_list;
mod steps;
mod validate;
mod weights;
mod workload;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub use observed::{
    Observed, PlanConfig, PodView, RecordedTemplate, ReplicaSetView, ServiceView, VirtualServiceView, Workload,
};

use kube::api::DynamicObject;

use crate::api::{AnalysisRun, Phase, Rollout, RolloutStatus, RouteKind};
use conditions as cond;
use metadata::MetadataChange;
use planner::Planner;

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
    /// Create a new revision's ReplicaSet. Its name taken by another object is a hash collision.
    CreateReplicaSet(Box<ReplicaSet>),
    /// Create the stable ReplicaSet again after someone deleted it.
    RecreateReplicaSet(Box<ReplicaSet>),
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
    /// A JSON Patch of a VirtualService's header routes.
    PatchVirtualService {
        namespace: String,
        name: String,
        patch: Vec<serde_json::Value>,
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
    /// Create the canary Ingress of a stable Ingress (ingress-nginx).
    CreateIngress(Box<Ingress>),
    /// A merge patch of a canary Ingress: its weight, annotations or rules.
    PatchIngress {
        name: String,
        patch: serde_json::Value,
        canary_weight: i32,
    },
    /// Create an AnalysisRun. Its name already held by a run this Rollout controls (a cache that
    /// lags behind an earlier create) counts as created.
    CreateAnalysisRun(Box<AnalysisRun>),
    /// Set `spec.terminate` on a run: it stops measuring and completes.
    TerminateAnalysisRun {
        name: String,
    },
    DeleteAnalysisRun {
        name: String,
    },
    /// A JSON Patch on a router's object (an ApisixRoute, an HTTPRoute, a GRPCRoute), each change
    /// guarded by a `test` of what it changes; `canary_weight` when it moves traffic.
    PatchRoute {
        kind: RouteKind,
        namespace: String,
        name: String,
        patch: Vec<serde_json::Value>,
        canary_weight: Option<i32>,
    },
    /// Create a router's object this Rollout owns (a header route's ApisixRoute).
    CreateRoute {
        kind: RouteKind,
        object: Box<DynamicObject>,
    },
    /// Delete a router's object this Rollout owns, if it still is the one with `uid`.
    DeleteRoute {
        kind: RouteKind,
        namespace: String,
        name: String,
        uid: String,
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
        return finalize::finalize(observed);
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

/// Another object holds the name of the ReplicaSet this plan creates: count the collision, so the
/// next plan hashes the template to another name (as upstream).
pub fn hash_collision(observed: &Observed) -> Plan {
    let mut status = observed.rollout.status.clone().unwrap_or_default();
    status.collision_count = Some(status.collision_count.unwrap_or(0).saturating_add(1));
    Plan { status, ..Default::default() }
}

/// The status of a Rollout that can't even be read (a field of the wrong type, which the CRD
/// schema can't catch): Degraded, with the reader's error, so whoever looks sees what to fix.
pub fn unreadable(name: &str, error: &str, now: Timestamp) -> RolloutStatus {
    let mut status = RolloutStatus::default();
    mark_invalid(&mut status, name, &format!("it could not be read ({error}); fix the field named"), now);
    status
}

/// Sets the InvalidSpec condition, the Degraded phase and the message; returns the message.
fn mark_invalid(status: &mut RolloutStatus, name: &str, message: &str, now: Timestamp) -> String {
    let full = format!("The Rollout \"{name}\" is invalid: {message}");
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    cond::set(conditions, cond::INVALID_SPEC, cond::Status::True, reasons::INVALID_SPEC, &full, now);
    status.phase = Some(Phase::Degraded.as_str().into());
    status.message = Some(format!("{}: {full}", reasons::INVALID_SPEC));
    full
}

/// An invalid spec: report it and change nothing else.
fn invalid(observed: &Observed, before: RolloutStatus, message: &str) -> Plan {
    let mut status = before.clone();
    let full = mark_invalid(&mut status, rollout_name(&observed.rollout), message, observed.now);
    status.observed_generation = generation(&observed.rollout);
    // Seen, even if it can't be used: tools waiting for the controller to observe it may go on.
    status.workload_observed_generation = observed.workload.as_ref().and_then(|w| w.generation).map(|g| g.to_string());
    let mut events = Vec::new();
    let changed =
        before.conditions.as_deref().and_then(|c| cond::find(c, cond::INVALID_SPEC)).is_none_or(|c| c.message != full);
    if changed {
        events.push(Event { warning: true, reason: reasons::INVALID_SPEC, message: full });
    }
    Plan { status, events, ..Default::default() }
}

/// `app=web,tier=front`: the form the scale subresource reports.
pub fn format_selector(selector: &LabelSelector) -> String {
    let labels = selector.match_labels.clone().unwrap_or_default();
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests;
