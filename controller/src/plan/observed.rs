//! `Observed`: everything one reconcile of one Rollout may look at, gathered by `observe` from
//! the caches. Plain data, so `plan` stays pure and tests build it by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::analysis::templates::TemplateKey;
use kube::api::DynamicObject;

use crate::api::{AnalysisRun, AnalysisTemplateSpec, PodMetadata, Rollout, RouteKind};

#[derive(Clone, Debug)]
pub struct Observed {
    pub rollout: Rollout,
    /// The object `spec.workloadRef` names, when it exists.
    pub workload: Option<Workload>,
    /// ReplicaSets that carry the pod-template-hash label and belong to this Rollout, or are
    /// orphans its selector matches.
    pub replica_sets: Vec<ReplicaSetView>,
    /// The stable and canary Services that exist, by name.
    pub services: BTreeMap<String, ServiceView>,
    /// Referenced VirtualServices that exist, by (namespace, name). `None` when the cluster has no
    /// VirtualService API.
    pub virtual_services: Option<BTreeMap<(String, String), VirtualServiceView>>,
    /// The stable Ingresses the nginx router names and their canary Ingresses, those that exist,
    /// by name (in the Rollout's namespace).
    pub ingresses: BTreeMap<String, Ingress>,
    /// The objects of the routers' custom resources the Rollout references, for each kind it
    /// references: those that exist, by (namespace, name), or `None` when the cluster doesn't
    /// serve the kind.
    pub route_objects: BTreeMap<RouteKind, Option<RouteObjects>>,
    /// Pods of the rollout; gathered only while a restart is pending.
    pub pods: Vec<PodView>,
    /// The recorded pod template of the stable revision, read only when its ReplicaSet is gone.
    pub stable_template: Option<RecordedTemplate>,
    /// The AnalysisRuns this Rollout controls (its UID is their controller owner).
    pub analysis_runs: Vec<AnalysisRun>,
    /// The analysis templates its steps and background analysis reach, nested ones too, by
    /// (cluster-scoped, name). A missing one is absent.
    pub analysis_templates: BTreeMap<TemplateKey, AnalysisTemplateSpec>,
    pub now: Timestamp,
    pub config: PlanConfig,
}

/// A router kind's referenced objects that exist, by (namespace, name).
pub type RouteObjects = BTreeMap<(String, String), DynamicObject>;

impl Observed {
    /// The referenced object of `kind` at (`namespace`, `name`), if it exists; an error naming
    /// the CRD when the cluster doesn't serve the kind.
    pub fn route_object(&self, kind: RouteKind, namespace: &str, name: &str) -> Result<Option<&DynamicObject>, String> {
        match self.route_objects.get(&kind) {
            Some(Some(objects)) => Ok(objects.get(&(namespace.to_string(), name.to_string()))),
            _ => Err(kind.missing_api()),
        }
    }
}

/// Controller-wide settings that decisions depend on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanConfig {
    /// Gap between consecutive traffic changes of a promotion or abort, unless the Rollout sets
    /// `trafficSettleSeconds`.
    pub settle: Duration,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig { settle: Duration::from_secs(10) }
    }
}

/// The referenced workload (Deployment, ReplicaSet or PodTemplate).
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub template: PodTemplateSpec,
    pub selector: Option<LabelSelector>,
    pub generation: Option<i64>,
    /// `spec.replicas` when the workload is a Deployment (for `scaleDown`).
    pub deployment_replicas: Option<i32>,
    /// Available pods of that Deployment.
    pub deployment_available: i32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaSetView {
    pub name: String,
    /// Value of the `rollouts-pod-template-hash` label.
    pub hash: String,
    /// False for an orphan that the Rollout's selector matches (to adopt).
    pub owned: bool,
    pub revision: Option<u64>,
    pub revision_history: Option<String>,
    pub spec_replicas: i32,
    pub status_replicas: i32,
    pub ready: i32,
    pub available: i32,
    /// `rollout.argoproj.io/desired-replicas`: spec.replicas of the Rollout when last sized.
    pub desired_replicas_annotation: Option<i32>,
    pub scale_down_deadline: Option<Timestamp>,
    pub created: Option<Timestamp>,
    /// The ReplicaSet controller has seen the latest spec.
    pub status_current: bool,
    /// Reason and message of a ReplicaFailure condition.
    pub failure: Option<(String, String)>,
    /// Ephemeral metadata injected into its template and pods (its record annotation).
    pub injected: PodMetadata,
    pub deleting: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceView {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    /// The Rollout named by the managed-by annotation.
    pub managed_by: Option<String>,
    /// When this controller last switched its selector (`rollouts.argoproj.io/traffic-changed-at`).
    pub traffic_changed_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtualServiceView {
    pub namespace: String,
    pub name: String,
    pub spec: Value,
    /// When this controller last set its weights (`rollouts.argoproj.io/traffic-changed-at`).
    pub traffic_changed_at: Option<Timestamp>,
    /// Whether it has any annotations: a JSON Patch adds one to the map, or creates the map.
    pub annotated: bool,
    pub resource_version: Option<String>,
}

/// A revision's pod template as recorded when its ReplicaSet was created (a ControllerRevision
/// named like the ReplicaSet), so the ReplicaSet can be created again if someone deletes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedTemplate {
    pub template: PodTemplateSpec,
    pub revision: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodView {
    pub name: String,
    pub created: Option<Timestamp>,
    pub available: bool,
    pub deleting: bool,
}
