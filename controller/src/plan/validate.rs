//! Spec validation: every failure becomes an `InvalidSpec` condition whose message names the
//! field and says what to do. The admission schema catches the cheap cases; these need the whole
//! object or the objects it references.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::observed::Observed;
use super::routers::{self, Router};
use crate::api::{CanaryStep, CanaryStrategy, DEFAULT_PROGRESS_DEADLINE_SECONDS, POD_TEMPLATE_HASH_LABEL, RolloutSpec};

/// What a valid Rollout resolves to.
#[derive(Clone, Debug)]
pub struct ValidRollout<'a> {
    pub canary: &'a CanaryStrategy,
    pub steps: &'a [CanaryStep],
    pub template: PodTemplateSpec,
    pub selector: LabelSelector,
    /// Stable and canary Service names, when both are set.
    pub services: Option<(&'a str, &'a str)>,
    /// The traffic routers, when the canary is traffic-routed.
    pub routers: Vec<Router>,
    /// What the canary and stable weights add up to (`maxTrafficWeight`, 100 by default).
    pub max_weight: i32,
}

impl ValidRollout<'_> {
    pub fn traffic_routed(&self) -> bool {
        !self.routers.is_empty()
    }
}

const NOT_SUPPORTED: &str = "is not supported by this controller yet";

pub fn validate(observed: &Observed) -> Result<ValidRollout<'_>, String> {
    let spec = &observed.rollout.spec;
    let canary = spec.strategy.canary.as_ref().ok_or_else(|| {
        if spec.strategy.blue_green.is_some() {
            format!("spec.strategy.blueGreen {NOT_SUPPORTED}; use spec.strategy.canary")
        } else {
            "spec.strategy.canary is required".to_string()
        }
    })?;
    unsupported_features(spec, canary)?;
    let steps = canary.steps.as_deref().unwrap_or_default();
    check_strategy(spec, canary, steps)?;
    check_weights(canary, steps)?;
    let (template, selector) = resolve_template(observed)?;
    check_ephemeral_metadata(canary, &selector)?;
    let services = check_services(observed, canary, &template)?;
    let routers = routers::configured(observed, canary, services)?;
    super::header_routes::check(canary, steps, &routers)?;
    super::analysis::validate::check(observed, canary, &selector)?;
    Ok(ValidRollout { canary, steps, template, selector, services, routers, max_weight: canary.max_weight() })
}

fn unsupported_features(spec: &RolloutSpec, canary: &CanaryStrategy) -> Result<(), String> {
    let mut found: Vec<String> = Vec::new();
    let flag = |found: &mut Vec<String>, present: bool, field: &str| {
        if present {
            found.push(field.to_string());
        }
    };
    flag(&mut found, spec.strategy.blue_green.is_some(), "spec.strategy.blueGreen");
    flag(&mut found, spec.rollback_window.is_some(), "spec.rollbackWindow");
    flag(&mut found, canary.anti_affinity.is_some(), "spec.strategy.canary.antiAffinity");
    flag(&mut found, canary.ping_pong.is_some(), "spec.strategy.canary.pingPong");
    flag(&mut found, canary.replica_progress_threshold.is_some(), "spec.strategy.canary.replicaProgressThreshold");
    if let Some(routing) = &canary.traffic_routing {
        for router in routing.other_routers.keys() {
            found.push(format!("spec.strategy.canary.trafficRouting.{router} (istio and nginx are)"));
        }
        // Plugins are not loaded: the Gateway API one is built in, without its TCP/TLS routes and selectors.
        use crate::api::GATEWAY_API_PLUGIN;
        let plugins = routing.plugins.as_ref();
        for plugin in plugins.iter().flat_map(|p| p.others.keys()) {
            found.push(format!(
                "spec.strategy.canary.trafficRouting.plugins.\"{plugin}\" (only \"{GATEWAY_API_PLUGIN}\" is, built in)"
            ));
        }
        for setting in plugins.and_then(|p| p.gateway_api.as_ref()).iter().flat_map(|g| g.others.keys()) {
            found.push(format!("spec.strategy.canary.trafficRouting.plugins.\"{GATEWAY_API_PLUGIN}\".{setting}"));
        }
        flag(
            &mut found,
            routing.istio.as_ref().is_some_and(|i| i.destination_rule.is_some()),
            "spec.strategy.canary.trafficRouting.istio.destinationRule",
        );
    }
    for (index, step) in canary.steps.iter().flatten().enumerate() {
        for (present, kind) in [
            (step.experiment.is_some(), "experiment"),
            (step.set_mirror_route.is_some(), "setMirrorRoute"),
            (step.plugin.is_some(), "plugin"),
        ] {
            flag(&mut found, present, &format!("spec.strategy.canary.steps[{index}].{kind}"));
        }
    }
    match found.as_slice() {
        [] => Ok(()),
        [one] => Err(format!("{one} {NOT_SUPPORTED}; remove it to use this controller")),
        [first, rest @ ..] => {
            Err(format!("{first} (and {}) {NOT_SUPPORTED}; remove them to use this controller", rest.join(", ")))
        }
    }
}

fn is_zero(value: Option<&IntOrString>) -> bool {
    match value {
        Some(IntOrString::Int(0)) => true,
        Some(IntOrString::String(text)) => text.trim_end_matches('%').parse::<i64>() == Ok(0),
        _ => false,
    }
}

fn check_strategy(spec: &RolloutSpec, canary: &CanaryStrategy, steps: &[CanaryStep]) -> Result<(), String> {
    let routed = canary.traffic_routing.is_some();
    if is_zero(canary.max_surge.as_ref()) && is_zero(canary.max_unavailable.as_ref()) {
        return Err("spec.strategy.canary.maxSurge and maxUnavailable are both 0, so no pod could ever be replaced; raise one of them".into());
    }
    let requires_routing = [
        (canary.scale_down_delay_seconds.is_some(), "scaleDownDelaySeconds"),
        (canary.dynamic_stable_scale == Some(true), "dynamicStableScale"),
        (canary.min_pods_per_replica_set.is_some(), "minPodsPerReplicaSet"),
        (canary.traffic_settle_seconds.is_some(), "trafficSettleSeconds"),
    ];
    for (present, field) in requires_routing {
        if present && !routed {
            return Err(format!(
                "spec.strategy.canary.{field} needs spec.strategy.canary.trafficRouting; remove it or add traffic routing"
            ));
        }
    }
    if canary.dynamic_stable_scale == Some(true) && canary.scale_down_delay_seconds.is_some() {
        return Err(
            "spec.strategy.canary.scaleDownDelaySeconds can't be combined with dynamicStableScale; remove one of them"
                .into(),
        );
    }
    if let Some(index) = steps.iter().position(|s| s.set_canary_scale.is_some())
        && !routed
    {
        return Err(format!(
            "spec.strategy.canary.steps[{index}].setCanaryScale needs spec.strategy.canary.trafficRouting"
        ));
    }
    for (index, step) in steps.iter().enumerate() {
        if let Some(duration) = step.pause.as_ref().and_then(|p| p.duration.as_ref())
            && super::step_list::parse_duration(duration).is_none()
        {
            return Err(format!(
                "spec.strategy.canary.steps[{index}].pause.duration is not a duration; use seconds or e.g. 30s, 5m"
            ));
        }
    }
    let progress_deadline = spec.progress_deadline_seconds.unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    if progress_deadline <= spec.min_ready_seconds.unwrap_or(0) {
        return Err("spec.progressDeadlineSeconds must be greater than spec.minReadySeconds".into());
    }
    Ok(())
}

/// A step's weights count in `maxTrafficWeight` with traffic routing, in percent of pods without.
fn check_weights(canary: &CanaryStrategy, steps: &[CanaryStep]) -> Result<(), String> {
    let max = canary.max_weight();
    let limit = if canary.traffic_routing.is_some() {
        format!("{max}, the total of the weights (spec.strategy.canary.trafficRouting.maxTrafficWeight)")
    } else {
        "100: without traffic routing it is a percentage of pods".into()
    };
    for (index, step) in steps.iter().enumerate() {
        let scale = step.set_canary_scale.as_ref().and_then(|s| s.weight);
        for (field, weight) in [("setWeight", step.set_weight), ("setCanaryScale.weight", scale)] {
            if let Some(weight) = weight.filter(|w| *w > max) {
                return Err(format!("spec.strategy.canary.steps[{index}].{field} is {weight}, above {limit}"));
            }
        }
    }
    Ok(())
}

/// The pod template and selector, inline or from the workload.
fn resolve_template(observed: &Observed) -> Result<(PodTemplateSpec, LabelSelector), String> {
    let spec = &observed.rollout.spec;
    let (template, workload_selector) = match &spec.workload_ref {
        Some(reference) => {
            let template_set = spec.template.as_ref().is_some_and(|t| {
                t.spec.is_some() || t.metadata.as_ref().is_some_and(|m| m.labels.is_some() || m.annotations.is_some())
            });
            if template_set {
                return Err("spec.template must be empty when spec.workloadRef is set; remove one of them".into());
            }
            let expected_api = reference.kind.api_version();
            if let Some(api_version) = &reference.api_version
                && api_version != expected_api
            {
                return Err(format!(
                    "spec.workloadRef: workload of type {api_version}/{} is not supported; use apiVersion {expected_api}",
                    reference.kind
                ));
            }
            let workload = observed.workload.as_ref().ok_or_else(|| {
                format!(
                    "spec.workloadRef: {} \"{}\" not found in namespace {}; create it or correct spec.workloadRef.name",
                    reference.kind,
                    reference.name,
                    observed.rollout.metadata.namespace.as_deref().unwrap_or("default")
                )
            })?;
            (workload.template.clone(), workload.selector.clone())
        }
        None => {
            let template = spec.template.clone().ok_or("spec.template is required unless spec.workloadRef is set")?;
            (*template, None)
        }
    };
    if template.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Err("spec.template.spec.containers must list at least one container".into());
    }
    let selector = spec
        .selector
        .clone()
        .or(workload_selector)
        .ok_or("spec.selector is required unless the workloadRef has one; add spec.selector.matchLabels")?;
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    if selector.match_expressions.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err("spec.selector.matchExpressions is not supported by this controller yet; use matchLabels".into());
    }
    let match_labels = selector.match_labels.clone().unwrap_or_default();
    if match_labels.is_empty() {
        return Err("spec.selector is empty and would select every pod; set spec.selector.matchLabels".into());
    }
    if let Some((key, value)) = match_labels.iter().find(|(k, v)| labels.get(*k) != Some(*v)) {
        return Err(format!(
            "spec.selector does not match the pod template: label {key}={value} is missing from spec.template.metadata.labels"
        ));
    }
    Ok((template, selector))
}

/// Ephemeral labels must leave the labels that tie pods to their ReplicaSet alone.
fn check_ephemeral_metadata(canary: &CanaryStrategy, selector: &LabelSelector) -> Result<(), String> {
    let selector_labels = selector.match_labels.clone().unwrap_or_default();
    for (field, metadata) in [("stableMetadata", &canary.stable_metadata), ("canaryMetadata", &canary.canary_metadata)]
    {
        let labels = metadata.as_ref().and_then(|m| m.labels.as_ref());
        if let Some(key) = labels
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .find(|k| k.as_str() == POD_TEMPLATE_HASH_LABEL || selector_labels.contains_key(k.as_str()))
        {
            return Err(format!(
                "spec.strategy.canary.{field}.labels.{key}: the selector and the pod-template hash label are the controller's; use another label"
            ));
        }
    }
    Ok(())
}

fn check_services<'a>(
    observed: &Observed,
    canary: &'a CanaryStrategy,
    template: &PodTemplateSpec,
) -> Result<Option<(&'a str, &'a str)>, String> {
    let rollout_name = observed.rollout.metadata.name.as_deref().unwrap_or_default();
    let labels: BTreeMap<String, String> =
        template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    let named =
        [("stableService", canary.stable_service.as_deref()), ("canaryService", canary.canary_service.as_deref())];
    for (field, name) in named {
        let Some(name) = name else { continue };
        let service = observed.services.get(name).ok_or_else(|| {
            format!("spec.strategy.canary.{field}: Service \"{name}\" not found; create it or correct the name")
        })?;
        if let Some(owner) = service.managed_by.as_deref().filter(|owner| *owner != rollout_name) {
            return Err(format!(
                "spec.strategy.canary.{field}: Service \"{name}\" is managed by Rollout \"{owner}\"; each Service serves one Rollout"
            ));
        }
        if let Some((key, value)) =
            service.selector.iter().find(|(k, v)| k.as_str() != POD_TEMPLATE_HASH_LABEL && labels.get(*k) != Some(*v))
        {
            return Err(format!(
                "spec.strategy.canary.{field}: Service \"{name}\" selects {key}={value}, which the pod template doesn't have; align the labels"
            ));
        }
    }
    match (canary.stable_service.as_deref(), canary.canary_service.as_deref()) {
        (Some(stable), Some(canary_name)) if stable == canary_name => Err(format!(
            "spec.strategy.canary.stableService and canaryService are both \"{stable}\"; they must be different Services"
        )),
        (Some(stable), Some(canary_name)) => Ok(Some((stable, canary_name))),
        (None, None) => Ok(None),
        _ => Err("spec.strategy.canary: set both stableService and canaryService, or neither".into()),
    }
}
