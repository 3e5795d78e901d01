//! `Rollout.spec`, with Argo Rollouts' JSON names and shapes.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::schema::{int_or_string, pass_through, pause_duration};
use super::status::RolloutStatus;
use super::{
    AnalysisRunStrategy, ApisixTrafficRouting, ManagedRoute, NginxTrafficRouting, RolloutAnalysis,
    RolloutAnalysisBackground, SetHeaderRoute, TrafficRouterPlugins,
};

/// A Rollout replaces a Deployment's rolling update with a canary that runs a list of steps.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "ro",
    category = "all",
    doc = "A Rollout runs a canary of a Deployment's pod template (argoproj.io/v1alpha1, served by rollouts-controller)",
    derive = "PartialEq",
    derive = "Default",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.HPAReplicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas", "description": "Number of desired pods"}"#,
    printcolumn = r#"{"name": "Current", "type": "integer", "jsonPath": ".status.replicas", "description": "Total number of non-terminated pods"}"#,
    printcolumn = r#"{"name": "Up-to-date", "type": "integer", "jsonPath": ".status.updatedReplicas", "description": "Total number of non-terminated pods that run the current template"}"#,
    printcolumn = r#"{"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas", "description": "Total number of available pods"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Healthy, Progressing, Paused or Degraded"}"#,
    printcolumn = r#"{"name": "Step", "type": "integer", "jsonPath": ".status.currentStepIndex", "description": "Index of the current canary step"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Desired number of pods. Defaults to 1. The HPA writes it through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Label selector for the pods. Required unless workloadRef is set; immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic", "x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec.selector is immutable"}]))]
    pub selector: Option<LabelSelector>,
    /// The pod template. Required unless workloadRef is set. The apiserver validates it when the
    /// controller creates the ReplicaSet.
    // Boxed: inline it would add 1.8 KB to every cached Rollout, and most use workloadRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub template: Option<Box<PodTemplateSpec>>,
    /// Takes the pod template from an existing workload instead of spec.template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,
    /// Seconds a new pod must be ready before it counts as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i32>,
    /// Old ReplicaSets to keep for rollback. Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,
    /// Manual pause: no step advances while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Seconds before a rollout that makes no progress is reported as ProgressDeadlineExceeded. Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort the update when the progress deadline is exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    /// Pods created before this time are replaced, a few at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub rollback_window: Option<Value>,
    /// How many finished AnalysisRuns to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStrategy>,
    pub strategy: RolloutStrategy,
}

/// Where the pod template comes from when it is not inline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Deployment, ReplicaSet or PodTemplate.
    pub kind: WorkloadKind,
    pub name: String,
    /// never (default), onsuccess or progressively: when to scale the referenced Deployment down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
}

impl WorkloadRef {
    /// Whether this controller scales the Deployment down (and so gives the pods back on delete).
    pub fn scales_down(&self) -> bool {
        matches!(self.scale_down, Some(ScaleDown::OnSuccess | ScaleDown::Progressively))
    }
}

/// The kinds of workload a Rollout can take its pod template from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    ReplicaSet,
    PodTemplate,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::PodTemplate => "PodTemplate",
        }
    }

    /// The apiVersion its objects have.
    pub fn api_version(self) -> &'static str {
        if self == WorkloadKind::PodTemplate { "v1" } else { "apps/v1" }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// never (default), onsuccess or progressively: when to scale the referenced Deployment down.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDown {
    /// Never: the Deployment keeps its replicas (the default).
    Never,
    /// To zero once the Rollout's own pods are all available.
    OnSuccess,
    /// Down by as many pods as the Rollout has available, then to zero.
    Progressively,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.canary) != has(self.blueGreen)", "message": "spec.strategy: set exactly one of canary or blueGreen"}]))]
pub struct RolloutStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub blue_green: Option<Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.steps) || self.steps.all(s, !has(s.setWeight) || s.setWeight <= (has(self.trafficRouting) && has(self.trafficRouting.maxTrafficWeight) ? self.trafficRouting.maxTrafficWeight : 100))",
    "message": "setWeight may not exceed trafficRouting.maxTrafficWeight (100 unless set)",
    "fieldPath": ".steps"
}]))]
pub struct CanaryStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodMetadata>,
    /// Pods above spec.replicas during a basic canary: a count or a percentage. Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string")]
    pub max_surge: Option<IntOrString>,
    /// Pods that may be unavailable during a basic canary: a count or a percentage. Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string")]
    pub max_unavailable: Option<IntOrString>,
    /// With traffic routing: the least number of pods of a ReplicaSet that has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_pods_per_replica_set: Option<i32>,
    /// With traffic routing: seconds to keep the old stable pods after promotion. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<i32>,
    /// How many old ReplicaSets may wait for their scale-down delay at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// With traffic routing: seconds to keep the canary pods after an abort. Defaults to 30; 0 keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// With traffic routing: shrink the stable ReplicaSet as traffic moves to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_stable_scale: Option<bool>,
    /// Seconds between moving traffic and switching the stable Service's selector at promotion and
    /// abort, so proxies stop sending to pods before they leave a Service. An extension of this
    /// controller; defaults to the controller's --settle-seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub traffic_settle_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub steps: Option<Vec<CanaryStep>>,
    /// Analysis that runs beside the steps; its failure aborts the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub anti_affinity: Option<Value>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub ping_pong: Option<Value>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub replica_progress_threshold: Option<Value>,
}

impl CanaryStrategy {
    /// What the canary and stable weights add up to: `trafficRouting.maxTrafficWeight`, 100
    /// when unset (and always without traffic routing, where a weight is a percentage of pods).
    pub fn max_weight(&self) -> i32 {
        self.traffic_routing.as_ref().and_then(|t| t.max_traffic_weight).unwrap_or(100)
    }
}

/// Labels and annotations added to the pods of the stable or canary ReplicaSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PodMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Unknown keys are kept (not pruned) so that routers this controller doesn't support yet
/// (nginx, alb, smi, plugins, ...) are reported instead of silently dropped.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct TrafficRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioTrafficRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxTrafficRouting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apisix: Option<ApisixTrafficRouting>,
    /// The Gateway API plugin's key, served natively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<TrafficRouterPlugins>,
    /// The routes steps add (`setHeaderRoute`), in order of precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_routes: Option<Vec<ManagedRoute>>,
    /// What the canary and stable weights add up to (default 100): `setWeight` counts in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_traffic_weight: Option<i32>,
    /// Every other traffic router, kept so it can be reported as not supported yet.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other_routers: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTrafficRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_services: Option<Vec<IstioVirtualService>>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub destination_rule: Option<Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// `name` or `name.namespace`.
    pub name: String,
    /// Names of the HTTP routes to manage. Optional when the VirtualService has one HTTP route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_routes: Option<Vec<TlsRoute>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<Vec<TcpRoute>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TcpRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// One canary step. Exactly one action is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.setWeight), has(self.pause), has(self.setCanaryScale), has(self.analysis), has(self.experiment), has(self.setHeaderRoute), has(self.setMirrorRoute), has(self.plugin)].filter(x, x).size() == 1",
    "message": "each step must set exactly one of setWeight, pause, setCanaryScale, analysis, experiment, setHeaderRoute, setMirrorRoute or plugin"
}]))]
pub struct CanaryStep {
    /// The canary's share of traffic, out of `trafficRouting.maxTrafficWeight` (100 by default);
    /// without traffic routing, the percentage of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub set_weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Runs analysis; the step is done when the run is Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub experiment: Option<Value>,
    /// Sends requests with matching headers to the canary, until the update ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub set_mirror_route: Option<Value>,
    /// Not supported by this controller yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub plugin: Option<Value>,
}

/// Waits for a duration, or until someone promotes the rollout when no duration is given.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RolloutPause {
    /// Seconds as a number, or a duration such as "30s", "5m" or "1h30m".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pause_duration")]
    pub duration: Option<IntOrString>,
}

/// Scales the canary independently of its traffic weight.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// The canary's share of `spec.replicas`, out of `trafficRouting.maxTrafficWeight` (a
    /// percentage by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}
