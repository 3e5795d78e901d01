//! Kinds of the Argo Rollouts API this controller does not run yet, served so that tools which
//! list them (`kubectl argo rollouts get` and `status` watch Experiments and wait until they can
//! list them) work. Their schemas keep whatever is written; a Rollout that uses them is reported
//! as InvalidSpec until they are supported.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::pass_through;

/// An Experiment: ReplicaSets run side by side for a while, with analysis.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "PassThrough",
    shortname = "exp",
    doc = "An experiment (argoproj.io/v1alpha1; not run by rollouts-controller yet)",
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.phase", "description": "Phase of the experiment"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct ExperimentSpec {
    #[serde(flatten)]
    #[schemars(skip)]
    pub fields: serde_json::Map<String, Value>,
}

/// A status kept as written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(schema_with = "pass_through")]
pub struct PassThrough(pub Value);
