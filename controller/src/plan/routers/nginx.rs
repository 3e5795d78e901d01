//! ingress-nginx: for each stable Ingress, a canary Ingress `<rollout>-<stable Ingress>-canary`
//! owned by the Rollout, carrying the stable Ingress's paths to the stable Service (sent to the
//! canary Service instead; other paths are left out, unlike upstream #3541) and ingress-nginx's
//! canary annotations with the weight (and `canary-weight-total`, the `maxTrafficWeight`, unless
//! 100). It exists from the first healthy reconcile, at weight 0.
//! Annotations this controller set and no longer wants are removed: the keys it set are
//! recorded on the object. Foreign annotations and fields are left alone.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressRule, IngressSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use super::super::objects::{controlled_by, owner};
use super::super::{Action, Observed, rollout_name};
use crate::api::{CanaryStrategy, DEFAULT_NGINX_ANNOTATION_PREFIX, NginxTrafficRouting, TRAFFIC_CHANGED_ANNOTATION};

/// The annotation keys this controller set on a canary Ingress, comma-separated.
pub const MANAGED_ANNOTATIONS: &str = "rollouts.argoproj.io/managed-annotations";
const FIELD: &str = "spec.strategy.canary.trafficRouting.nginx";
/// Longest object name the apiserver takes.
const MAX_NAME: usize = 253;

#[derive(Clone, Debug, PartialEq)]
pub struct ManagedIngresses {
    /// The stable Ingresses, each with the name of its canary Ingress.
    pub ingresses: Vec<(String, String)>,
    pub prefix: String,
    /// The annotations the canary Ingresses carry besides the weight.
    pub annotations: BTreeMap<String, String>,
}

fn settings(canary: &CanaryStrategy) -> Option<&NginxTrafficRouting> {
    canary.traffic_routing.as_ref()?.nginx.as_ref()
}

fn stable_names(nginx: &NginxTrafficRouting) -> Result<Vec<String>, String> {
    match (&nginx.stable_ingress, &nginx.stable_ingresses) {
        (Some(one), None) => Ok(vec![one.clone()]),
        (None, Some(many)) if !many.is_empty() => Ok(many.clone()),
        (Some(_), Some(_)) => Err(format!("{FIELD}: set stableIngress or stableIngresses, not both")),
        _ => Err(format!(
            "{FIELD}: set stableIngress (or stableIngresses): the Ingress that sends to the stable Service"
        )),
    }
}

/// `<rollout>-<stable>-canary`, the rollout's part cut so the name fits.
pub fn canary_name(rollout: &str, stable: &str) -> String {
    let suffix = format!("-{stable}-canary");
    let room = MAX_NAME.saturating_sub(suffix.len());
    format!("{}{suffix}", &rollout[..rollout.len().min(room)])
}

/// The Ingresses a Rollout names, stable and canary, for `observe` and the watches.
pub fn references(canary: &CanaryStrategy, rollout: &str) -> Vec<String> {
    let stable = settings(canary).and_then(|n| stable_names(n).ok()).unwrap_or_default();
    stable.iter().flat_map(|s| [s.clone(), canary_name(rollout, s)]).collect()
}

/// The stable Ingresses checked against what exists: each found, sending to the stable Service,
/// and its canary Ingress (if any) this Rollout's.
pub fn configured(
    observed: &Observed,
    canary: &CanaryStrategy,
    (stable_service, _): (&str, &str),
) -> Result<Option<ManagedIngresses>, String> {
    let Some(nginx) = settings(canary) else { return Ok(None) };
    let rollout = rollout_name(&observed.rollout);
    let field = if nginx.stable_ingresses.is_some() { "stableIngresses" } else { "stableIngress" };
    let mut ingresses = Vec::new();
    for stable in stable_names(nginx)? {
        let found = observed.ingresses.get(&stable).ok_or_else(|| {
            format!("{FIELD}.{field}: Invalid value: \"{stable}\": Ingress \"{stable}\" not found; create it or correct the name")
        })?;
        if canary_rules(found, stable_service, stable_service).is_empty() {
            return Err(format!(
                "{FIELD}.{field}: Invalid value: \"{stable}\": ingress `{stable}` has no rules using service {stable_service} backend"
            ));
        }
        let canary_ingress = canary_name(rollout, &stable);
        if let Some(existing) = observed.ingresses.get(&canary_ingress)
            && !controlled_by(&existing.metadata, &observed.rollout)
        {
            return Err(format!(
                "{FIELD}: the canary Ingress \"{canary_ingress}\" exists and belongs to something else; delete it, or rename the Rollout or the stable Ingress"
            ));
        }
        ingresses.push((stable, canary_ingress));
    }
    let prefix = nginx.annotation_prefix.clone().unwrap_or_else(|| DEFAULT_NGINX_ANNOTATION_PREFIX.into());
    let mut annotations: BTreeMap<String, String> = nginx
        .additional_ingress_annotations
        .iter()
        .flatten()
        .map(|(key, value)| {
            let key = if key.contains('/') { key.clone() } else { format!("{prefix}/{key}") };
            (key, value.clone())
        })
        .collect();
    annotations.extend(nginx.canary_ingress_annotations.clone().unwrap_or_default());
    annotations.insert(format!("{prefix}/canary"), "true".into());
    // ingress-nginx's total is 100 unless told; at 100 the annotation goes (as a key no longer wanted).
    let max_weight = canary.max_weight();
    if max_weight != 100 {
        annotations.insert(format!("{prefix}/canary-weight-total"), max_weight.to_string());
    }
    Ok(Some(ManagedIngresses { ingresses, prefix, annotations }))
}

/// The rules of `ingress` that send to `from`, with only those paths, sent to `to` instead.
fn canary_rules(ingress: &Ingress, from: &str, to: &str) -> Vec<IngressRule> {
    let rules = ingress.spec.as_ref().and_then(|s| s.rules.clone()).unwrap_or_default();
    rules
        .into_iter()
        .filter_map(|mut rule| {
            let http = rule.http.as_mut()?;
            http.paths.retain(|path| path.backend.service.as_ref().is_some_and(|s| s.name == from));
            for path in &mut http.paths {
                if let Some(service) = path.backend.service.as_mut() {
                    service.name = to.to_string();
                }
            }
            (!http.paths.is_empty()).then_some(rule)
        })
        .collect()
}

fn weight_key(prefix: &str) -> String {
    format!("{prefix}/canary-weight")
}

fn annotation<'o>(ingress: &'o Ingress, key: &str) -> Option<&'o String> {
    ingress.metadata.annotations.as_ref()?.get(key)
}

impl ManagedIngresses {
    /// The canary weight of each canary Ingress; 0 for one not created yet.
    pub fn canary_weights(&self, observed: &Observed) -> Vec<i32> {
        let key = weight_key(&self.prefix);
        self.ingresses
            .iter()
            .map(|(_, canary)| {
                observed
                    .ingresses
                    .get(canary)
                    .and_then(|i| annotation(i, &key))
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Creates or patches each canary Ingress that differs from what `weight` asks for.
    pub fn set_weight(
        &self,
        observed: &Observed,
        (stable, canary): (&str, &str),
        weight: i32,
        at: Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for (stable_ingress, canary_ingress) in &self.ingresses {
            let Some(source) = observed.ingresses.get(stable_ingress) else { continue };
            let mut annotations = self.annotations.clone();
            annotations.insert(weight_key(&self.prefix), weight.to_string());
            if let Some(class) = annotation(source, "kubernetes.io/ingress.class") {
                annotations.insert("kubernetes.io/ingress.class".into(), class.clone());
            }
            let source_spec = source.spec.clone().unwrap_or_default();
            let spec = IngressSpec {
                ingress_class_name: source_spec.ingress_class_name,
                tls: source_spec.tls,
                rules: Some(canary_rules(source, stable, canary)),
                default_backend: None,
            };
            let live = observed.ingresses.get(canary_ingress);
            let moved = live.and_then(|i| annotation(i, &weight_key(&self.prefix))) != Some(&weight.to_string());
            let stamp = match live.and_then(|i| annotation(i, TRAFFIC_CHANGED_ANNOTATION)) {
                Some(previous) if !moved => previous.clone(),
                _ => at.to_string(),
            };
            annotations.insert(TRAFFIC_CHANGED_ANNOTATION.into(), stamp);
            let keys: Vec<&str> = annotations.keys().map(String::as_str).collect();
            let record = keys.join(",");
            annotations.insert(MANAGED_ANNOTATIONS.into(), record);
            match live {
                None => actions.push(Action::CreateIngress(Box::new(Ingress {
                    metadata: ObjectMeta {
                        name: Some(canary_ingress.clone()),
                        namespace: observed.rollout.metadata.namespace.clone(),
                        annotations: Some(annotations),
                        owner_references: Some(vec![owner(&observed.rollout)]),
                        ..Default::default()
                    },
                    spec: Some(spec),
                    status: None,
                }))),
                Some(live) => {
                    if let Some(patch) = patch(live, &annotations, &spec) {
                        actions.push(Action::PatchIngress {
                            name: canary_ingress.clone(),
                            patch,
                            canary_weight: weight,
                        });
                    }
                }
            }
        }
        actions
    }

    /// When this controller last changed a canary Ingress's weight.
    pub fn traffic_changed_at(&self, observed: &Observed) -> Option<Timestamp> {
        self.ingresses
            .iter()
            .filter_map(|(_, canary)| observed.ingresses.get(canary))
            .filter_map(|i| annotation(i, TRAFFIC_CHANGED_ANNOTATION)?.parse().ok())
            .max()
    }
}

/// The merge patch taking `live` to the annotations and spec wanted, or `None` when it has them:
/// keys this controller set before and no longer wants are removed; others are left alone.
fn patch(live: &Ingress, wanted: &BTreeMap<String, String>, spec: &IngressSpec) -> Option<Value> {
    let current = live.metadata.annotations.clone().unwrap_or_default();
    let mut annotations = serde_json::Map::new();
    for (key, value) in wanted {
        if current.get(key) != Some(value) {
            annotations.insert(key.clone(), json!(value));
        }
    }
    let recorded = current.get(MANAGED_ANNOTATIONS).map(String::as_str).unwrap_or_default();
    for key in recorded.split(',').filter(|k| !k.is_empty() && !wanted.contains_key(*k) && current.contains_key(*k)) {
        annotations.insert(key.to_string(), Value::Null);
    }
    let live_spec = live.spec.clone().unwrap_or_default();
    let mut body = serde_json::Map::new();
    if !annotations.is_empty() {
        body.insert("metadata".into(), json!({"annotations": annotations}));
    }
    let same_spec = live_spec.rules == spec.rules
        && live_spec.tls == spec.tls
        && live_spec.ingress_class_name == spec.ingress_class_name;
    if !same_spec {
        body.insert(
            "spec".into(),
            json!({"rules": spec.rules, "tls": spec.tls, "ingressClassName": spec.ingress_class_name}),
        );
    }
    (!body.is_empty()).then_some(Value::Object(body))
}
