//! Tests of `plan`: scenarios walked through a small simulator of the cluster, and property
//! tests of the invariants in `docs/architecture.md`. The `Sim` is in `sim.rs`; the tests
//! are in one file per concern.

use super::*;
use crate::api::{
    CanaryStep, CanaryStrategy, DESIRED_REPLICAS_ANNOTATION, EPHEMERAL_METADATA_ANNOTATION, FINALIZER,
    IstioTrafficRouting, IstioVirtualService, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION, RolloutPause, RolloutSpec, RolloutStrategy, SCALE_DOWN_DEADLINE_ANNOTATION, ScaleDown,
    SetCanaryScale, TRAFFIC_CHANGED_ANNOTATION, TrafficRouting, WORKLOAD_GENERATION_ANNOTATION, WorkloadKind,
    WorkloadRef,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

mod analysis;
mod apisix;
mod canary;
mod crash;
mod drift;
mod ephemeral;
mod gateway_api;
mod gateway_api_headers;
mod header_routes;
mod invariants;
mod max_weight;
mod nginx;
mod sim;
mod status;
mod traffic;
mod validity;
mod workload;

use sim::Sim;

const NAMESPACE: &str = "ns";

pub(super) fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn template(image: &str) -> PodTemplateSpec {
    serde_json::from_value(json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]}
    }))
    .unwrap()
}

pub(super) fn set_weight(weight: i32) -> CanaryStep {
    CanaryStep { set_weight: Some(weight), ..Default::default() }
}

pub(super) fn pause(seconds: Option<i32>) -> CanaryStep {
    CanaryStep { pause: Some(RolloutPause { duration: seconds.map(IntOrString::Int) }), ..Default::default() }
}

fn canary_scale(replicas: Option<i32>, match_traffic: bool) -> CanaryStep {
    CanaryStep {
        set_canary_scale: Some(SetCanaryScale {
            replicas,
            weight: None,
            match_traffic_weight: match_traffic.then_some(true),
        }),
        ..Default::default()
    }
}

fn rollout(replicas: i32, steps: Vec<CanaryStep>) -> Rollout {
    let mut rollout = Rollout::new(
        "web",
        RolloutSpec {
            replicas: Some(replicas),
            selector: Some(LabelSelector {
                match_labels: Some([("app".into(), "web".into())].into()),
                ..Default::default()
            }),
            template: Some(Box::new(template("v1"))),
            strategy: RolloutStrategy {
                canary: Some(CanaryStrategy { steps: Some(steps), ..Default::default() }),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    rollout.metadata.namespace = Some(NAMESPACE.into());
    rollout.metadata.uid = Some("uid-1".into());
    rollout.metadata.generation = Some(1);
    rollout
}

/// Adds Istio traffic routing with Services `web-stable`/`web-canary` and VirtualService `web`.
fn with_istio(mut rollout: Rollout) -> Rollout {
    let canary = rollout.spec.strategy.canary.as_mut().unwrap();
    canary.stable_service = Some("web-stable".into());
    canary.canary_service = Some("web-canary".into());
    canary.traffic_routing = Some(TrafficRouting {
        istio: Some(IstioTrafficRouting {
            virtual_service: Some(IstioVirtualService {
                name: "web".into(),
                routes: Some(vec!["primary".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    rollout
}

/// Adds stable and canary Services `web-stable`/`web-canary` without traffic routing.
fn with_services(mut rollout: Rollout) -> Rollout {
    let canary = rollout.spec.strategy.canary.as_mut().unwrap();
    canary.stable_service = Some("web-stable".into());
    canary.canary_service = Some("web-canary".into());
    rollout
}

fn service(name: &str) -> ServiceView {
    ServiceView { name: name.into(), selector: [("app".into(), "web".into())].into(), ..Default::default() }
}

fn virtual_service() -> VirtualServiceView {
    VirtualServiceView {
        namespace: NAMESPACE.into(),
        name: "web".into(),
        spec: json!({"hosts": ["web"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "web-stable"}, "weight": 100},
            {"destination": {"host": "web-canary"}, "weight": 0}
        ]}]}),
        resource_version: Some("1".into()),
        ..Default::default()
    }
}

fn observed(rollout: Rollout) -> Observed {
    let canary = rollout.spec.strategy.canary.as_ref();
    let routed = canary.is_some_and(|c| c.traffic_routing.is_some());
    let with_services = canary.is_some_and(|c| c.stable_service.is_some());
    let mut observed = Observed {
        rollout,
        workload: None,
        replica_sets: Vec::new(),
        services: BTreeMap::new(),
        virtual_services: Some(BTreeMap::new()),
        ingresses: BTreeMap::new(),
        route_objects: BTreeMap::new(),
        pods: Vec::new(),
        stable_template: None,
        analysis_runs: Vec::new(),
        analysis_templates: BTreeMap::new(),
        now: t(0),
        config: PlanConfig { settle: std::time::Duration::from_secs(2) },
    };
    if with_services {
        for name in ["web-stable", "web-canary"] {
            observed.services.insert(name.into(), service(name));
        }
    }
    if routed {
        observed.virtual_services.as_mut().unwrap().insert((NAMESPACE.into(), "web".into()), virtual_service());
    }
    observed
}

fn hash_of(image: &str) -> String {
    hash::pod_template_hash(&template(image), &[], None)
}

fn phase(sim: &Sim) -> String {
    sim.status().phase.unwrap_or_default()
}

fn healthy_basic(steps: Vec<CanaryStep>) -> Sim {
    let mut sim = Sim::new(observed(rollout(4, steps)));
    sim.settle();
    sim
}

/// An Istio canary of 4 pods paused at 10%.
fn istio_paused_at_ten() -> Sim {
    let steps = vec![set_weight(10), pause(None), set_weight(50), pause(None)];
    let mut sim = Sim::new(observed(with_istio(rollout(4, steps))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.vs_weights(), phase(&sim).as_str()), ((90, 10), "Paused"));
    sim
}

fn workload_ref_sim(scale_down: ScaleDown, steps: Vec<CanaryStep>) -> Sim {
    let mut spec = rollout(4, steps);
    spec.spec.template = None;
    spec.spec.workload_ref = Some(WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: "web".into(),
        scale_down: Some(scale_down),
        ..Default::default()
    });
    // Annotated like anything applied with kubectl: Argo CD's health check then compares the
    // workload-generation annotation with the status.
    spec.metadata.annotations = Some([("kubectl.kubernetes.io/last-applied-configuration".into(), "{}".into())].into());
    let mut sim = Sim::new(observed(spec));
    sim.observed.workload = Some(Workload {
        template: template("v1"),
        selector: None,
        generation: Some(1),
        deployment_replicas: Some(4),
        deployment_available: 4,
    });
    sim.settle();
    sim
}

fn with_ephemeral_metadata(mut rollout: Rollout) -> Rollout {
    let canary = rollout.spec.strategy.canary.as_mut().unwrap();
    let metadata = |role: &str| crate::api::PodMetadata {
        labels: Some([("role".to_string(), role.to_string())].into()),
        annotations: (role == "canary").then(|| [("canary-since".to_string(), "v2".to_string())].into()),
    };
    canary.stable_metadata = Some(metadata("stable"));
    canary.canary_metadata = Some(metadata("canary"));
    rollout
}
