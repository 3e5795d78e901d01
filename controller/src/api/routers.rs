//! The traffic routers' settings on a Rollout beyond Istio's, with Argo's JSON names.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The prefix of ingress-nginx's annotations unless `annotationPrefix` says otherwise.
pub const DEFAULT_NGINX_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// ingress-nginx: a canary Ingress per stable Ingress, weighted by annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxTrafficRouting {
    /// The Ingress whose rules send to the stable Service (or `stableIngresses` for several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingresses: Option<Vec<String>>,
    /// Defaults to nginx.ingress.kubernetes.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// Added to the canary Ingress, the prefix put before keys without one (e.g. canary-by-header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Added to the canary Ingress as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ingress_annotations: Option<BTreeMap<String, String>>,
}
