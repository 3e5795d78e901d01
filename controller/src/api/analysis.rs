//! AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun: measurements that decide whether a
//! canary is healthy, with Argo Rollouts' JSON names and shapes. The run's status is in
//! `analysis_status.rs`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::analysis_status::AnalysisRunStatus;
use super::schema::{go_duration, limit, limit_or_disabled, pass_through};

/// Metrics and arguments that AnalysisRuns are made from.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "at",
    doc = "Metrics that decide whether a canary is healthy (argoproj.io/v1alpha1, served by rollouts-controller)",
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// The measurements to take. May be empty when `templates` brings them.
    #[serde(default)]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
    /// Arguments the metrics use as `{{args.NAME}}`; one without a value must be supplied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<Argument>,
    /// Metrics (by name pattern) that are measured but never fail the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// How many measurements to keep, per metric name pattern (default 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Other templates whose metrics and arguments this one includes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateRef>,
}

/// An AnalysisTemplate shared by every namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "cat",
    doc = "Metrics that decide whether a canary is healthy, for every namespace (argoproj.io/v1alpha1, served by rollouts-controller)",
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
pub struct ClusterAnalysisTemplateSpec {
    #[serde(flatten)]
    pub template: AnalysisTemplateSpec,
}

/// A run of metrics. Its status is written on the object itself (no status subresource), as
/// upstream does, so the tools that read and patch runs work unchanged.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisRun",
    namespaced,
    derive = "PartialEq",
    status = "AnalysisRunStatus",
    shortname = "ar",
    doc = "A run of analysis metrics (argoproj.io/v1alpha1, run by rollouts-controller)",
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.phase", "description": "Phase of the run"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<Argument>,
    /// Stops the run: no new measurements; in-flight ones end Inconclusive.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminate: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// When a completed run is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_strategy: Option<TtlStrategy>,
}

/// One measurement repeated over time, and when it passes or fails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.count) || type(self.count) == string || self.count <= 1 || has(self.interval)",
    "message": "interval must be specified when count > 1"
}]))]
pub struct Metric {
    pub name: String,
    /// Time between measurements (a Go duration: 30s, 5m, 1h30m). Without it, one measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_duration")]
    pub interval: Option<String>,
    /// How long after the run starts the first measurement is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "go_duration")]
    pub initial_delay: Option<String>,
    /// Measurements to take; with an interval and no count, measure until the run is terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limit")]
    pub count: Option<IntOrString>,
    /// An expression over `result` that is true when a measurement passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// An expression over `result` that is true when a measurement fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated (default 0; -1 never fails, with consecutiveSuccessLimit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limit_or_disabled")]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements tolerated (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limit")]
    pub inconclusive_limit: Option<IntOrString>,
    /// Errors in a row tolerated (default 4: the fifth ends the metric in Error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limit")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// Successes in a row that end the metric Successful early (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "limit")]
    pub consecutive_success_limit: Option<IntOrString>,
    pub provider: MetricProvider,
}

/// Where a measurement comes from: exactly one provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.prometheus) ? 1 : 0) + (has(self.web) ? 1 : 0) + (has(self.job) ? 1 : 0) + (has(self.datadog) ? 1 : 0) + (has(self.newRelic) ? 1 : 0) + (has(self.wavefront) ? 1 : 0) + (has(self.kayenta) ? 1 : 0) + (has(self.cloudWatch) ? 1 : 0) + (has(self.graphite) ? 1 : 0) + (has(self.influxdb) ? 1 : 0) + (has(self.skywalking) ? 1 : 0) + (has(self.plugin) ? 1 : 0) == 1",
    "message": "provider: set exactly one provider (prometheus, web or job)"
}]))]
pub struct MetricProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
    /// Providers of upstream's API this controller doesn't run: kept, and reported on the run.
    #[serde(flatten)]
    pub unsupported: UnsupportedProviders,
}

/// Upstream's other providers, accepted (so templates apply) and reported as not supported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsupportedProviders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub datadog: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub new_relic: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub wavefront: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub kayenta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub cloud_watch: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub graphite: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub influxdb: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub skywalking: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub plugin: Option<Value>,
}

/// An instant PromQL query.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// The server, e.g. http://prometheus.monitoring:9090.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub query: String,
    /// Seconds to wait for an answer (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub timeout: Option<i64>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Sent with every query, e.g. `Authorization: Bearer {{args.token}}` with the token from a Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// basicAuth is supported; oauth2 and sigv4 are reported as not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub authentication: Option<Value>,
    /// Range queries are reported as not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub range_query: Option<Value>,
}

/// An HTTP request whose JSON answer is the result.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    pub url: String,
    /// GET (default), POST or PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^(GET|POST|PUT)$"))]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSON body (sent with Content-Type: application/json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub json_body: Option<Value>,
    /// Seconds to wait for an answer (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub timeout_seconds: Option<i64>,
    /// Which part of the answer is the result, e.g. `{$.data.ok}` (default: all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Skip TLS certificate verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// oauth2 is reported as not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pass_through")]
    pub authentication: Option<Value>,
}

/// A batch Job: Successful when it completes, Failed when it fails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JobMetadata>,
    /// A batch/v1 JobSpec; the apiserver validates it when the Job is created.
    #[schemars(schema_with = "pass_through")]
    pub spec: Value,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct JobMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Header {
    pub key: String,
    pub value: String,
}

/// An argument: a value, a value read from elsewhere, or neither (then it must be supplied).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A key of a Secret in the run's namespace, read when a measurement needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A field of the run's metadata: metadata.name, metadata.namespace, metadata.uid,
    /// metadata.labels['k'], metadata.annotations['k'].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

/// Metrics whose name matches `metricName` (a regular expression) run without failing the run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub metric_name: String,
}

/// Keep `limit` measurements of the metrics whose name matches `metricName`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    pub metric_name: String,
    #[schemars(range(min = 0))]
    pub limit: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    pub template_name: String,
    /// A ClusterAnalysisTemplate rather than an AnalysisTemplate of the same namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

/// Seconds after completion before a run is deleted: after success, after failure, or after
/// any completion (also Error and Inconclusive).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TtlStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seconds_after_completion: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seconds_after_failure: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seconds_after_success: Option<i32>,
}

impl MetricProvider {
    /// The provider's name (as in the API), or why there isn't exactly one.
    pub fn name(&self) -> Result<String, &'static str> {
        let mut names: Vec<String> =
            [("prometheus", self.prometheus.is_some()), ("web", self.web.is_some()), ("job", self.job.is_some())]
                .into_iter()
                .filter(|(_, set)| *set)
                .map(|(name, _)| name.to_string())
                .collect();
        if let Ok(Value::Object(others)) = serde_json::to_value(&self.unsupported) {
            names.extend(others.keys().cloned());
        }
        match names.len() {
            0 => Err("no provider specified"),
            1 => Ok(names.remove(0)),
            _ => Err("multiple providers specified"),
        }
    }
}
