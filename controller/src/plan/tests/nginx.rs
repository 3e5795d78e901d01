//! ingress-nginx: the canary Ingress made from the stable Ingress's matching paths, created at
//! weight 0, weighted through the steps in the request-safe order, its annotations kept as
//! configured (stale ones removed, foreign ones left), and a bad reference InvalidSpec.

use super::*;
use crate::api::NginxTrafficRouting;
use k8s_openapi::api::networking::v1::Ingress;

const CANARY_INGRESS: &str = "web-web-canary";
pub(super) const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

pub(super) fn stable_ingress() -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NAMESPACE, "annotations": {"team": "shop"}},
        "spec": {"ingressClassName": "nginx", "rules": [
            {"host": "shop.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}},
                {"path": "/admin", "pathType": "Prefix", "backend": {"service": {"name": "admin", "port": {"number": 80}}}}
            ]}},
            {"host": "other.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}
            ]}}
        ]}
    }))
    .unwrap()
}

/// Adds ingress-nginx routing through the stable Ingress `web` (and the Services it needs).
pub(super) fn with_nginx(rollout: Rollout) -> Rollout {
    let mut rollout = with_services(rollout);
    let canary = rollout.spec.strategy.canary.as_mut().unwrap();
    canary.traffic_routing = Some(TrafficRouting {
        nginx: Some(NginxTrafficRouting {
            stable_ingress: Some("web".into()),
            additional_ingress_annotations: Some([("canary-by-header".to_string(), "X-Canary".to_string())].into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    rollout
}

/// A Sim of `with_nginx`, its stable Ingress in place.
pub(super) fn nginx_observed(rollout: Rollout) -> Observed {
    let mut observed = observed(with_nginx(rollout));
    for name in ["web-stable", "web-canary"] {
        observed.services.insert(name.into(), service(name));
    }
    observed.ingresses.insert("web".into(), stable_ingress());
    observed
}

fn nginx_sim(steps: Vec<CanaryStep>) -> Sim {
    Sim::new(nginx_observed(rollout(4, steps)))
}

impl Sim {
    fn canary_ingress(&self) -> &Ingress {
        &self.observed.ingresses[CANARY_INGRESS]
    }

    pub(super) fn ingress_annotation(&self, key: &str) -> Option<String> {
        self.canary_ingress().metadata.annotations.as_ref()?.get(key).cloned()
    }

    pub(super) fn ingress_weight(&self) -> i32 {
        self.ingress_annotation(WEIGHT).unwrap().parse().unwrap()
    }

    /// The canary weight of every canary Ingress patch the plans made.
    pub(super) fn ingress_weight_writes(&self) -> Vec<i32> {
        let weight = |action: &Action| match action {
            Action::PatchIngress { canary_weight, .. } => Some(*canary_weight),
            _ => None,
        };
        self.plans.iter().flat_map(|p| &p.actions).filter_map(weight).collect()
    }
}

#[test]
fn the_canary_ingress_is_made_from_the_matching_paths_at_weight_zero() {
    let mut sim = nginx_sim(vec![set_weight(20), pause(None)]);
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.ingress_weight(), 0, "created at weight 0 once healthy");
    let ingress = sim.canary_ingress();
    assert_eq!(ingress.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
    let spec = serde_json::to_value(ingress.spec.as_ref().unwrap()).unwrap();
    assert_eq!(
        spec,
        json!({"ingressClassName": "nginx", "rules": [{"host": "shop.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}}
        ]}}]}),
        "only the paths to the stable Service, sent to the canary Service"
    );
    assert_eq!(sim.ingress_annotation("nginx.ingress.kubernetes.io/canary").as_deref(), Some("true"));
    assert_eq!(sim.ingress_annotation("nginx.ingress.kubernetes.io/canary-by-header").as_deref(), Some("X-Canary"));
    assert_eq!(sim.ingress_annotation("team"), None, "the stable Ingress's own annotations are not copied");
}

#[test]
fn weights_follow_the_steps_and_go_home_after_the_stable_service_moved() {
    let mut sim = nginx_sim(vec![set_weight(20), pause(None), set_weight(50), pause(None)]);
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.ingress_weight(), phase(&sim).as_str()), (20, "Paused"));
    let v2 = hash_of("v2");
    assert_eq!(sim.selector("web-canary"), Some(v2.clone()));
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.ingress_weight(), 50);
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(10);
    assert_eq!(sim.selector("web-stable"), Some(v2), "promoted: the stable Service selects the new pods");
    assert_eq!(sim.ingress_weight(), 0, "and the canary weight went back to 0 after that settled");
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.ingress_weight_writes(), [20, 50, 100, 0], "each weight written once");
}

#[test]
fn annotations_it_set_are_kept_as_configured_and_foreign_ones_left_alone() {
    let mut sim = nginx_sim(vec![set_weight(20), pause(None)]);
    sim.settle();
    let ingress = sim.observed.ingresses.get_mut(CANARY_INGRESS).unwrap();
    ingress
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("kustomize.toolkit.fluxcd.io/reconcile".into(), "disabled".into());
    let routing = sim.observed.rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing.as_mut().unwrap();
    routing.nginx.as_mut().unwrap().additional_ingress_annotations = None;
    sim.settle();
    assert_eq!(
        sim.ingress_annotation("nginx.ingress.kubernetes.io/canary-by-header"),
        None,
        "a removed annotation goes"
    );
    assert_eq!(sim.ingress_annotation("kustomize.toolkit.fluxcd.io/reconcile").as_deref(), Some("disabled"));
    // Someone edits the weight: it is put back.
    let ingress = sim.observed.ingresses.get_mut(CANARY_INGRESS).unwrap();
    ingress.metadata.annotations.as_mut().unwrap().insert(WEIGHT.into(), "30".into());
    sim.run_for(3); // after the settle gap of the annotation fix above
    assert_eq!(sim.ingress_weight(), 0);
}

#[test]
fn a_stable_ingress_that_is_missing_or_sends_elsewhere_is_invalid_and_nothing_is_written() {
    let mut missing = nginx_sim(vec![set_weight(20)]);
    missing.observed.ingresses.clear();
    let plan = missing.step();
    assert!(plan.actions.is_empty());
    assert!(plan.status.message.unwrap().contains(
        "spec.strategy.canary.trafficRouting.nginx.stableIngress: Invalid value: \"web\": Ingress \"web\" not found"
    ));
    let mut elsewhere = nginx_sim(vec![set_weight(20)]);
    let mut ingress = stable_ingress();
    ingress.spec.as_mut().unwrap().rules.as_mut().unwrap().remove(0);
    elsewhere.observed.ingresses.insert("web".into(), ingress);
    let plan = elsewhere.step();
    assert!(plan.actions.is_empty());
    assert!(plan.status.message.unwrap().contains("ingress `web` has no rules using service web-stable backend"));
    let mut taken = nginx_sim(vec![set_weight(20)]);
    let mut foreign = stable_ingress();
    foreign.metadata.name = Some(CANARY_INGRESS.into());
    taken.observed.ingresses.insert(CANARY_INGRESS.into(), foreign);
    let plan = taken.step();
    assert!(plan.actions.is_empty());
    assert!(plan.status.message.unwrap().contains("belongs to something else"));
}

#[test]
fn istio_and_nginx_on_one_rollout_move_together() {
    let mut sim = nginx_sim(vec![set_weight(20), pause(None), set_weight(50), pause(None)]);
    let nginx = sim.observed.rollout.spec.strategy.canary.as_ref().unwrap().traffic_routing.clone().unwrap().nginx;
    sim.observed.rollout = with_istio(sim.observed.rollout.clone());
    sim.observed.rollout.spec.strategy.canary.as_mut().unwrap().traffic_routing.as_mut().unwrap().nginx = nginx;
    sim.observed.virtual_services.as_mut().unwrap().insert((NAMESPACE.into(), "web".into()), virtual_service());
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.vs_weights(), sim.ingress_weight()), ((80, 20), 20));
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!((sim.vs_weights(), sim.ingress_weight()), ((50, 50), 50));
    // The mesh holds its weight but the edge was changed: the step's weight is put back there only.
    let ingress = sim.observed.ingresses.get_mut(CANARY_INGRESS).unwrap();
    ingress.metadata.annotations.as_mut().unwrap().insert(WEIGHT.into(), "10".into());
    let plan = sim.step();
    let writes: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::PatchIngress { .. } | Action::SetVirtualServiceWeights { .. }))
        .collect();
    assert!(matches!(writes.as_slice(), [Action::PatchIngress { canary_weight: 50, .. }]), "{writes:?}");
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(10);
    assert_eq!((sim.vs_weights(), sim.ingress_weight(), phase(&sim).as_str()), ((100, 0), 0, "Healthy"));
}
