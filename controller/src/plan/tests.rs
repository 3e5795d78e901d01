//! Tests of `plan`: scenarios walked through a small simulator of the cluster, and property
//! tests of the invariants in `shared/design/architecture.md` §2.

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
use proptest::prelude::*;
use serde_json::json;

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
    let routed = rollout.spec.strategy.canary.as_ref().is_some_and(|c| c.traffic_routing.is_some());
    let mut observed = Observed {
        rollout,
        workload: None,
        replica_sets: Vec::new(),
        services: BTreeMap::new(),
        virtual_services: Some(BTreeMap::new()),
        pods: Vec::new(),
        stable_template: None,
        now: t(0),
        config: PlanConfig { settle: std::time::Duration::from_secs(2) },
    };
    if routed {
        for name in ["web-stable", "web-canary"] {
            observed.services.insert(name.into(), service(name));
        }
        observed.virtual_services.as_mut().unwrap().insert((NAMESPACE.into(), "web".into()), virtual_service());
    }
    observed
}

/// A tiny cluster: applies a plan's writes to `Observed`. Pods become available at once when
/// `ready` is set, like kwok's fake kubelet.
pub(super) struct Sim {
    pub observed: Observed,
    pub ready: bool,
    pub plans: Vec<Plan>,
    /// Recorded pod templates (ControllerRevisions), by name.
    pub records: BTreeMap<String, RecordedTemplate>,
    /// Hashes whose pods never become available.
    pub failing: Vec<String>,
}

impl Sim {
    pub fn new(observed: Observed) -> Self {
        Sim { observed, ready: true, plans: Vec::new(), records: BTreeMap::new(), failing: Vec::new() }
    }

    pub fn status(&self) -> RolloutStatus {
        self.observed.rollout.status.clone().unwrap_or_default()
    }

    /// Plans once, applies it, and lets the ReplicaSets catch up.
    pub fn step(&mut self) -> Plan {
        self.catch_up();
        let plan = plan(&self.observed);
        self.apply(&plan);
        self.plans.push(plan.clone());
        plan
    }

    /// Reconciles until a plan would change nothing (or gives up after 60 rounds).
    pub fn settle(&mut self) {
        for _ in 0..60 {
            self.catch_up();
            let plan = plan(&self.observed);
            if plan.actions.is_empty() && plan.status == self.status() {
                return;
            }
            self.apply(&plan);
            self.plans.push(plan);
        }
        panic!("no fixed point after 60 reconciles; last status: {:#?}", self.status());
    }

    /// Moves the clock forward and settles.
    pub fn wait(&mut self, seconds: i64) {
        self.observed.now += SignedDuration::from_secs(seconds);
        self.settle();
    }

    /// Lets `seconds` pass a second at a time, settling after each.
    pub fn run_for(&mut self, seconds: i64) {
        for _ in 0..seconds {
            self.wait(1);
        }
    }

    pub fn rs(&self, hash: &str) -> Option<&ReplicaSetView> {
        self.observed.replica_sets.iter().find(|rs| rs.hash == hash)
    }

    pub fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            self.apply_action(action);
        }
        self.observed.rollout.status = Some(plan.status.clone());
        self.catch_up();
    }

    /// One write, as the apiserver would take it.
    pub fn apply_action(&mut self, action: &Action) {
        let now = self.observed.now;
        match action {
            Action::CreateReplicaSet(rs) => {
                let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL].clone();
                let annotations = rs.metadata.annotations.clone().unwrap_or_default();
                let injected = annotations.get(EPHEMERAL_METADATA_ANNOTATION).map(|r| metadata::parse_record(r));
                self.observed.replica_sets.push(ReplicaSetView {
                    name: rs.metadata.name.clone().unwrap(),
                    hash,
                    owned: true,
                    revision: annotations.get(REVISION_ANNOTATION).and_then(|r| r.parse().ok()),
                    spec_replicas: rs.spec.as_ref().unwrap().replicas.unwrap(),
                    desired_replicas_annotation: annotations
                        .get(DESIRED_REPLICAS_ANNOTATION)
                        .and_then(|r| r.parse().ok()),
                    created: Some(now),
                    status_current: true,
                    injected: injected.unwrap_or_default(),
                    ..Default::default()
                });
            }
            Action::PatchReplicaSet { name, replicas, annotations } => {
                let rs = self.observed.replica_sets.iter_mut().find(|rs| &rs.name == name).expect("patched RS exists");
                if let Some(replicas) = replicas {
                    assert!(*replicas >= 0, "negative replicas for {name}");
                    rs.spec_replicas = *replicas;
                }
                for (key, value) in annotations {
                    match key.as_str() {
                        DESIRED_REPLICAS_ANNOTATION => {
                            rs.desired_replicas_annotation = value.as_ref().map(|v| v.parse().unwrap())
                        }
                        SCALE_DOWN_DEADLINE_ANNOTATION => {
                            rs.scale_down_deadline = value.as_ref().map(|v| v.parse().unwrap())
                        }
                        REVISION_ANNOTATION => rs.revision = value.as_ref().map(|v| v.parse().unwrap()),
                        REVISION_HISTORY_ANNOTATION => rs.revision_history = value.clone(),
                        EPHEMERAL_METADATA_ANNOTATION => {
                            rs.injected = value.as_deref().map(metadata::parse_record).unwrap_or_default()
                        }
                        _ => {}
                    }
                }
            }
            Action::DeleteReplicaSet { name } => self.observed.replica_sets.retain(|rs| &rs.name != name),
            Action::SetServiceSelector { service, hash, changed_at } => {
                let rollout = self.observed.rollout.metadata.name.clone();
                let svc = self.observed.services.get_mut(service).expect("service exists");
                match hash {
                    Some(hash) => {
                        svc.selector.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
                        svc.managed_by = rollout;
                        svc.traffic_changed_at = Some(*changed_at);
                    }
                    None => {
                        svc.selector.remove(POD_TEMPLATE_HASH_LABEL);
                        svc.managed_by = None;
                        svc.traffic_changed_at = None;
                    }
                }
            }
            Action::SetVirtualServiceWeights { namespace, name, patch, .. } => {
                let vs = self
                    .observed
                    .virtual_services
                    .as_mut()
                    .unwrap()
                    .get_mut(&(namespace.clone(), name.clone()))
                    .unwrap();
                let mut object = json!({"metadata": {"resourceVersion": vs.resource_version}, "spec": vs.spec});
                if vs.annotated {
                    let changed_at = vs.traffic_changed_at.map(|t| t.to_string());
                    object["metadata"]["annotations"] = json!({TRAFFIC_CHANGED_ANNOTATION: changed_at});
                }
                let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(patch.clone())).unwrap();
                json_patch::patch(&mut object, &patch).expect("weight patch applies");
                vs.spec = object["spec"].clone();
                let changed_at = &object["metadata"]["annotations"][TRAFFIC_CHANGED_ANNOTATION];
                vs.traffic_changed_at = changed_at.as_str().map(|t| t.parse().unwrap());
                vs.annotated = true;
                let version: u64 = vs.resource_version.as_deref().unwrap_or("0").parse().unwrap();
                vs.resource_version = Some((version + 1).to_string());
            }
            Action::ScaleWorkload { replicas, .. } => {
                let workload = self.observed.workload.as_mut().expect("workload exists");
                workload.deployment_replicas = Some(*replicas);
                workload.deployment_available = *replicas;
            }
            Action::AddFinalizer => {
                self.observed.rollout.metadata.finalizers.get_or_insert_with(Vec::new).push(FINALIZER.into())
            }
            Action::RemoveFinalizer => self.observed.rollout.metadata.finalizers = None,
            Action::DefaultReplicas => self.observed.rollout.spec.replicas = Some(1),
            Action::AdoptReplicaSet { name } => {
                self.observed.replica_sets.iter_mut().filter(|rs| &rs.name == name).for_each(|rs| rs.owned = true)
            }
            Action::AnnotateRollout { annotations } => {
                let current = self.observed.rollout.metadata.annotations.get_or_insert_with(BTreeMap::new);
                for (key, value) in annotations {
                    match value {
                        Some(value) => current.insert(key.clone(), value.clone()),
                        None => current.remove(key),
                    };
                }
            }
            Action::RecordTemplate(record) => {
                let template = serde_json::from_value(record.data.clone().unwrap().0).unwrap();
                let revision = u64::try_from(record.revision).unwrap();
                self.records.insert(record.metadata.name.clone().unwrap(), RecordedTemplate { template, revision });
            }
            Action::DeleteTemplateRecord { name } => {
                self.records.remove(name);
            }
            Action::EvictPod { .. } | Action::SetTemplateMetadata { .. } | Action::SetPodMetadata { .. } => {}
        }
    }

    /// The ReplicaSet controller and kubelets do their part; `observe` reads the stable's record
    /// when its ReplicaSet is gone.
    fn catch_up(&mut self) {
        let stable = self.status().stable_rs.filter(|h| self.rs(h).is_none());
        self.observed.stable_template = stable.and_then(|h| self.records.get(&format!("web-{h}")).cloned());
        for rs in &mut self.observed.replica_sets {
            rs.status_replicas = rs.spec_replicas;
            if self.failing.contains(&rs.hash) {
                rs.available = 0;
                rs.ready = 0;
            } else if self.ready {
                rs.available = rs.spec_replicas;
                rs.ready = rs.spec_replicas;
            } else {
                rs.available = rs.available.min(rs.spec_replicas);
                rs.ready = rs.ready.min(rs.spec_replicas);
            }
        }
    }

    pub fn update_template(&mut self, image: &str) {
        self.observed.rollout.spec.template = Some(Box::new(template(image)));
        self.observed.rollout.metadata.generation = self.observed.rollout.metadata.generation.map(|g| g + 1);
    }

    pub fn set_status(&mut self, edit: impl FnOnce(&mut RolloutStatus)) {
        let mut status = self.status();
        edit(&mut status);
        self.observed.rollout.status = Some(status);
    }

    pub fn vs_weights(&self) -> (i64, i64) {
        let vs = &self.observed.virtual_services.as_ref().unwrap()[&(NAMESPACE.to_string(), "web".to_string())];
        let route = &vs.spec["http"][0]["route"];
        (route[0]["weight"].as_i64().unwrap(), route[1]["weight"].as_i64().unwrap())
    }

    pub fn selector(&self, service: &str) -> Option<String> {
        self.observed.services[service].selector.get(POD_TEMPLATE_HASH_LABEL).cloned()
    }

    pub fn events(&self) -> Vec<&'static str> {
        self.plans.iter().flat_map(|p| p.events.iter().map(|e| e.reason)).collect()
    }
}

fn hash_of(image: &str) -> String {
    hash::pod_template_hash(&template(image), &[], None)
}

fn phase(sim: &Sim) -> String {
    sim.status().phase.unwrap_or_default()
}

#[test]
fn initial_deploy_is_stable_at_once_and_healthy() {
    let mut sim = Sim::new(observed(rollout(4, vec![set_weight(25), pause(None)])));
    let first = sim.step();
    assert!(
        matches!(&first.actions[..], [Action::RecordTemplate(_), Action::CreateReplicaSet(rs), Action::AnnotateRollout { annotations }] if rs.spec.as_ref().unwrap().replicas == Some(4) && annotations[REVISION_ANNOTATION].as_deref() == Some("1")),
        "{first:#?}"
    );
    assert!(first.events.iter().any(|e| e.message.ends_with("Initial deploy")), "{:?}", first.events);
    sim.settle();
    let status = sim.status();
    let v1 = hash_of("v1");
    assert_eq!(status.stable_rs.as_deref(), Some(v1.as_str()));
    assert_eq!(status.current_step_index, Some(2));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(status.hpa_replicas, Some(4));
    assert_eq!(status.selector.as_deref(), Some("app=web"));
    assert_eq!(status.observed_generation.as_deref(), Some("1"));
    let condition =
        |type_: &str| status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == type_).map(|c| c.status.clone());
    assert_eq!(condition("Healthy").as_deref(), Some("True"));
    assert_eq!(condition("Completed").as_deref(), Some("True"));
    assert_eq!(condition("Available").as_deref(), Some("True"));
}

fn healthy_basic(steps: Vec<CanaryStep>) -> Sim {
    let mut sim = Sim::new(observed(rollout(4, steps)));
    sim.settle();
    sim
}

#[test]
fn basic_canary_walks_its_steps() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50), pause(Some(5))]);
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.update_template("v2");
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 1);
    assert_eq!(sim.rs(&v1).unwrap().spec_replicas, 3);
    assert!(sim.status().message.unwrap().contains("paused until promoted"), "{:?}", sim.status().message);

    // Promote the way the plugin does: clear the pause conditions.
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3));
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (2, 2));
    assert_eq!(phase(&sim), "Paused");

    sim.wait(4);
    assert_eq!(sim.status().current_step_index, Some(3), "5 s have not passed");
    let plan = plan(&sim.observed);
    assert_eq!(
        plan.requeue_at,
        Some(sim.observed.now + SignedDuration::from_secs(1)),
        "requeued exactly at the pause's expiry"
    );
    sim.wait(1);
    assert_eq!(sim.status().stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (4, 0));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.status().current_step_index, Some(4));
}

#[test]
fn abort_returns_to_stable_and_retry_starts_over() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50)]);
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Degraded");
    assert!(sim.status().message.unwrap().starts_with("RolloutAborted: Rollout aborted update to revision 2"));
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (0, 4));
    assert!(sim.events().contains(&"RolloutAborted"));

    sim.set_status(|s| s.abort = Some(false));
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.status().aborted_at, None);
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 1);
}

#[test]
fn abort_with_nothing_in_flight_is_a_no_op() {
    let mut sim = healthy_basic(vec![set_weight(25)]);
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.status().abort, None);
}

#[test]
fn template_back_to_stable_is_a_fast_rollback() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None)]);
    sim.update_template("v2");
    sim.settle();
    sim.update_template("v1");
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert!(sim.events().contains(&"SkipSteps"));
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 0);
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50), pause(None)]);
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.promote_full = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.status().promote_full, None);
    assert_eq!(sim.status().stable_rs, Some(hash_of("v2")));
}

#[test]
fn manual_pause_freezes_steps_but_not_scaling() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(Some(10)), set_weight(50)]);
    sim.update_template("v2");
    sim.settle();
    sim.observed.rollout.spec.paused = Some(true);
    sim.wait(30);
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(sim.status().current_step_index, Some(1), "the timed pause does not end while paused");
    // An HPA raises replicas: the pods are re-split at the same weight.
    sim.observed.rollout.spec.replicas = Some(8);
    sim.settle();
    assert_eq!((sim.rs(&hash_of("v2")).unwrap().spec_replicas, sim.rs(&hash_of("v1")).unwrap().spec_replicas), (2, 6));
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn a_paused_rollout_starts_no_new_revision() {
    let mut initial = rollout(4, vec![set_weight(25)]);
    initial.spec.paused = Some(true);
    let mut sim = Sim::new(observed(initial));
    sim.settle();
    assert!(sim.observed.replica_sets.is_empty());
    assert_eq!(phase(&sim), "Paused");
    sim.observed.rollout.spec.paused = None;
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn steps_edit_restarts_at_step_zero() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50), pause(None)]);
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3));
    sim.observed.rollout.spec.strategy.canary.as_mut().unwrap().steps =
        Some(vec![set_weight(10), pause(None), set_weight(50), pause(None)]);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn invalid_specs_are_reported_and_nothing_is_written() {
    type Edit = Box<dyn Fn(&mut Rollout)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|r| r.spec.strategy.blue_green = Some(json!({}))),
            "spec.strategy.blueGreen is not supported by this controller yet",
        ),
        (
            Box::new(|r| {
                r.spec
                    .strategy
                    .canary
                    .as_mut()
                    .unwrap()
                    .steps
                    .as_mut()
                    .unwrap()
                    .push(CanaryStep { experiment: Some(json!({})), ..Default::default() })
            }),
            "spec.strategy.canary.steps[2].experiment is not supported",
        ),
        (
            Box::new(|r| {
                r.spec.workload_ref =
                    Some(WorkloadRef { kind: WorkloadKind::Deployment, name: "web".into(), ..Default::default() })
            }),
            "spec.template must be empty when spec.workloadRef is set",
        ),
        (Box::new(|r| r.spec.selector = None), "spec.selector is required"),
        (
            Box::new(|r| {
                r.spec.selector.as_mut().unwrap().match_labels = Some([("app".into(), "other".into())].into())
            }),
            "label app=other is missing",
        ),
        (
            Box::new(|r| r.spec.strategy.canary.as_mut().unwrap().steps = Some(vec![canary_scale(Some(1), false)])),
            "setCanaryScale needs spec.strategy.canary.trafficRouting",
        ),
        (
            Box::new(|r| {
                let canary = r.spec.strategy.canary.as_mut().unwrap();
                canary.max_surge = Some(IntOrString::Int(0));
                canary.max_unavailable = Some(IntOrString::String("0%".into()));
            }),
            "maxSurge and maxUnavailable are both 0",
        ),
        (
            Box::new(|r| {
                let labels = Some([("app".to_string(), "canary".to_string())].into());
                r.spec.strategy.canary.as_mut().unwrap().canary_metadata =
                    Some(crate::api::PodMetadata { labels, annotations: None });
            }),
            "spec.strategy.canary.canaryMetadata.labels.app: the selector and the pod-template hash label",
        ),
    ];
    for (edit, expected) in cases {
        let mut spec = rollout(4, vec![set_weight(25), pause(None)]);
        edit(&mut spec);
        let plan = plan(&observed(spec));
        assert!(plan.actions.is_empty(), "{expected}: {:?}", plan.actions);
        assert_eq!(plan.status.phase.as_deref(), Some("Degraded"));
        let message = plan.status.message.unwrap();
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
        assert_eq!(plan.events.first().map(|e| e.reason), Some("InvalidSpec"));
    }
}

#[test]
fn a_missing_workload_is_invalid_until_it_appears() {
    let mut spec = rollout(2, vec![set_weight(50)]);
    spec.spec.template = None;
    spec.spec.workload_ref = Some(WorkloadRef {
        kind: WorkloadKind::Deployment,
        name: "web".into(),
        scale_down: Some(ScaleDown::OnSuccess),
        ..Default::default()
    });
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    assert!(sim.status().message.unwrap().contains("Deployment \"web\" not found"));
    assert!(sim.observed.replica_sets.is_empty());
    sim.observed.workload = Some(Workload {
        template: template("v1"),
        selector: None,
        generation: Some(3),
        deployment_replicas: Some(2),
        deployment_available: 2,
    });
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(
        sim.observed.workload.as_ref().unwrap().deployment_replicas,
        Some(0),
        "scaled down once the Rollout serves"
    );
    assert_eq!(sim.status().workload_observed_generation.as_deref(), Some("3"));
    // A GitOps re-sync brings the Deployment back: undone.
    sim.observed.workload.as_mut().unwrap().deployment_replicas = Some(2);
    sim.settle();
    assert_eq!(sim.observed.workload.as_ref().unwrap().deployment_replicas, Some(0));
    // Deleting the Rollout gives the Deployment its pods back first.
    sim.observed.rollout.metadata.deletion_timestamp = Some(Time(sim.observed.now));
    let plan = plan(&sim.observed);
    assert_eq!(
        plan.actions,
        vec![Action::ScaleWorkload { name: "web".into(), replicas: 2 }],
        "the finalizer waits for availability"
    );
    sim.apply(&plan);
    let plan = super::plan(&sim.observed);
    assert_eq!(plan.actions, vec![Action::RemoveFinalizer]);
}

#[test]
fn istio_canary_moves_traffic_and_promotes_without_dropping_requests() {
    let steps = vec![
        canary_scale(Some(2), false),
        pause(None),
        canary_scale(None, true),
        set_weight(10),
        pause(None),
        set_weight(50),
    ];
    let mut sim = Sim::new(observed(with_istio(rollout(4, steps))));
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    assert_eq!(sim.selector("web-stable"), Some(v1.clone()));
    assert_eq!(sim.selector("web-canary"), Some(v1.clone()));
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(phase(&sim), "Healthy");

    sim.update_template("v2");
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!((sim.rs(&v2).unwrap().spec_replicas, sim.rs(&v1).unwrap().spec_replicas), (2, 4));
    assert_eq!(sim.vs_weights(), (100, 0), "setCanaryScale moves no traffic");
    assert_eq!(sim.selector("web-canary"), Some(v2.clone()));

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 1, "matchTrafficWeight: ceil(4 * 10%)");
    assert_eq!(sim.status().canary.as_ref().unwrap().weights.as_ref().unwrap().canary.weight, 10);
    assert!(sim.events().contains(&"TrafficWeightUpdated"));

    // An external edit of the weights is put back.
    let vs =
        sim.observed.virtual_services.as_mut().unwrap().get_mut(&(NAMESPACE.to_string(), "web".to_string())).unwrap();
    vs.spec["http"][0]["route"][0]["weight"] = json!(100);
    vs.spec["http"][0]["route"][1]["weight"] = json!(0);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));

    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    // All steps done: the canary gets every pod, then all traffic; the stable Service waits to settle.
    assert_eq!(sim.vs_weights(), (0, 100));
    assert_eq!(sim.selector("web-stable"), Some(v1.clone()), "settle before the stable Service moves");
    assert_eq!(phase(&sim), "Progressing");
    sim.wait(2);
    assert_eq!(sim.selector("web-stable"), Some(v2.clone()));
    assert_eq!(sim.vs_weights(), (0, 100), "settle again before traffic returns to the stable Service");
    assert_eq!(phase(&sim), "Progressing");
    sim.wait(2);
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.rs(&v1).unwrap().spec_replicas, 4, "old pods are kept for scaleDownDelaySeconds");
    sim.wait(30);
    assert_eq!(sim.rs(&v1).unwrap().spec_replicas, 0);
}

#[test]
fn istio_abort_moves_traffic_first_then_services_then_pods() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(None)]))));
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.vs_weights(), (50, 50));
    sim.set_status(|s| s.abort = Some(true));
    let plan = sim.step();
    assert_eq!(sim.vs_weights(), (100, 0), "weight back to stable first");
    assert_eq!(sim.selector("web-canary"), Some(v2.clone()));
    assert!(plan.actions.iter().all(|a| !matches!(a, Action::SetServiceSelector { .. })));
    sim.wait(2);
    assert_eq!(sim.selector("web-canary"), Some(v1.clone()), "then the canary Service, after settling");
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 2);
    sim.wait(31);
    assert_eq!(sim.rs(&v2).unwrap().spec_replicas, 0, "then the canary pods, after abortScaleDownDelaySeconds");
    assert_eq!(phase(&sim), "Degraded");
}

#[test]
fn no_weight_goes_to_a_canary_without_available_pods() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50)]))));
    sim.settle();
    sim.ready = false;
    sim.update_template("v2");
    sim.settle();
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(sim.selector("web-canary"), Some(hash_of("v1")), "the canary Service waits for available pods");
    assert!(sim.status().message.unwrap().contains("0 of 2 pods available"), "{:?}", sim.status().message);
}

#[test]
fn hpa_scaling_mid_canary_resplits_without_advancing() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(Some(1)), set_weight(50)]);
    sim.update_template("v2");
    sim.settle();
    let index = sim.status().current_step_index;
    sim.observed.rollout.spec.replicas = Some(8);
    sim.observed.now += SignedDuration::from_secs(5);
    let plan = sim.step();
    assert_eq!(plan.status.current_step_index, index, "the scaling reconcile doesn't advance");
}

#[test]
fn restart_evicts_old_pods_within_max_unavailable() {
    let mut sim = healthy_basic(vec![set_weight(25)]);
    sim.observed.pods = (0..4)
        .map(|i| PodView { name: format!("p{i}"), created: Some(t(0)), available: true, deleting: false })
        .collect();
    sim.observed.rollout.spec.restart_at = Some(Time(t(10)));
    let early = plan(&sim.observed);
    assert_eq!(early.requeue_at, Some(t(10)));
    sim.observed.now = t(10);
    let plan = plan(&sim.observed);
    let evicted: Vec<_> = plan.actions.iter().filter(|a| matches!(a, Action::EvictPod { .. })).collect();
    assert_eq!(evicted.len(), 1, "25% of 4");
    sim.observed.pods = (0..4)
        .map(|i| PodView { name: format!("n{i}"), created: Some(t(11)), available: true, deleting: false })
        .collect();
    let done = super::plan(&sim.observed);
    assert_eq!(done.status.restarted_at, Some(Time(t(10))));
}

#[test]
fn old_revisions_beyond_the_history_limit_are_deleted() {
    let mut spec = rollout(1, vec![]);
    spec.spec.revision_history_limit = Some(1);
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    for image in ["v2", "v3", "v4"] {
        sim.update_template(image);
        sim.settle();
    }
    let hashes: Vec<String> = sim.observed.replica_sets.iter().map(|rs| rs.hash.clone()).collect();
    assert_eq!(hashes, vec![hash_of("v3"), hash_of("v4")]);
}

// ---- properties ---------------------------------------------------------------------------

fn any_step() -> impl Strategy<Value = CanaryStep> {
    prop_oneof![(0..=100i32).prop_map(set_weight), proptest::option::of(0..5i32).prop_map(pause)]
}

fn any_scenario() -> impl Strategy<Value = (i32, Vec<CanaryStep>, bool, Vec<u8>)> {
    (1..8i32, proptest::collection::vec(any_step(), 0..6), any::<bool>(), proptest::collection::vec(any::<u8>(), 1..40))
}

/// Drives random user actions (template changes, promotes, aborts, retries, scaling, time) and
/// checks the invariants after every reconcile.
fn check_invariants(replicas: i32, steps: Vec<CanaryStep>, routed: bool, script: Vec<u8>) -> Result<(), TestCaseError> {
    let spec = rollout(replicas, steps);
    let mut sim = Sim::new(observed(if routed { with_istio(spec) } else { spec }));
    let mut image = 1;
    for byte in script {
        match byte % 8 {
            0 => {
                image += 1;
                sim.update_template(&format!("v{image}"));
            }
            1 => sim.set_status(|s| s.pause_conditions = None),
            2 => sim.set_status(|s| s.abort = Some(true)),
            3 => sim.set_status(|s| s.abort = Some(false)),
            4 => sim.observed.rollout.spec.replicas = Some(i32::from(byte % 7) + 1),
            5 => sim.ready = !sim.ready,
            _ => sim.observed.now += SignedDuration::from_secs(i64::from(byte % 40)),
        }
        for _ in 0..4 {
            let before = sim.status();
            let plan = plan(&sim.observed);
            let index_before = before.current_step_index.unwrap_or(0);
            let index_after = plan.status.current_step_index.unwrap_or(0);
            let same_revision = before.current_pod_hash == plan.status.current_pod_hash
                && before.current_step_hash == plan.status.current_step_hash;
            let jumps = plan.status.promote_full == Some(true)
                || before.promote_full == Some(true)
                || plan.status.stable_rs != before.stable_rs;
            if same_revision && !jumps && before.abort == plan.status.abort {
                // A second step only when it is the setWeight step whose weight this plan writes.
                let second_step = usize::try_from(index_before + 1).unwrap_or(0);
                let writes_its_weight = plan.actions.iter().any(|a| {
                    matches!(a, Action::SetVirtualServiceWeights { canary_weight, .. }
                        if sim.observed.rollout.spec.strategy.canary.as_ref().and_then(|c| c.steps.as_ref())
                            .and_then(|s| s.get(second_step)).and_then(|s| s.set_weight) == Some(*canary_weight))
                });
                prop_assert!(
                    index_after - index_before <= 1 || index_after - index_before == 2 && writes_its_weight,
                    "more than one step advanced: {index_before} -> {index_after}"
                );
            }
            let patched: Vec<&String> = plan
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::PatchReplicaSet { name, .. } => Some(name),
                    _ => None,
                })
                .collect();
            let distinct: std::collections::BTreeSet<_> = patched.iter().collect();
            prop_assert_eq!(patched.len(), distinct.len(), "a ReplicaSet patched twice in one plan");
            for (position, action) in plan.actions.iter().enumerate() {
                match action {
                    Action::PatchReplicaSet { replicas: Some(n), .. } => prop_assert!(*n >= 0),
                    Action::SetServiceSelector { hash: Some(hash), .. } => {
                        let target = sim.rs(hash);
                        prop_assert!(
                            target.is_some_and(|rs| rs.available > 0),
                            "Service pointed at {hash} with no available pods"
                        );
                    }
                    Action::SetVirtualServiceWeights { canary_weight, .. } => {
                        prop_assert!((0..=100).contains(canary_weight));
                        if *canary_weight > 0 {
                            let canary_hash = plan.status.current_pod_hash.clone().unwrap();
                            prop_assert!(
                                sim.rs(&canary_hash).is_some_and(|rs| rs.available > 0),
                                "weight to a canary without pods"
                            );
                            let pointed_before = plan.actions[..position]
                                .iter()
                                .any(|a| a.points_service_at("web-canary", &canary_hash));
                            prop_assert!(
                                pointed_before || sim.selector("web-canary") == Some(canary_hash),
                                "weight to a canary Service that does not select the canary"
                            );
                        }
                    }
                    _ => {}
                }
            }
            if let Some(weights) = plan.status.canary.as_ref().and_then(|c| c.weights.as_ref()) {
                prop_assert_eq!(weights.canary.weight + weights.stable.weight, 100);
            }
            sim.apply(&plan);
            sim.plans.push(plan);
            for service in sim.observed.services.values() {
                if let Some(hash) = service.selector.get(POD_TEMPLATE_HASH_LABEL) {
                    let pods = sim.rs(hash).map_or(0, |rs| rs.spec_replicas);
                    prop_assert!(pods > 0, "Service {} selects {hash}, which was scaled to zero", service.name);
                }
            }
        }
    }
    // Convergence: with pods ready and time frozen, the plans reach a fixed point.
    sim.ready = true;
    sim.settle();
    let plan = plan(&sim.observed);
    prop_assert!(plan.actions.is_empty(), "not converged: {:?}", plan.actions);
    prop_assert_eq!(&plan.status, &sim.status());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_the_invariants((replicas, steps, routed, script) in any_scenario()) {
        check_invariants(replicas, steps, routed, script)?;
    }
}

#[test]
fn services_are_released_when_the_rollout_stops_naming_them() {
    let mut sim = Sim::new(observed(with_istio(rollout(2, vec![set_weight(50)]))));
    sim.settle();
    assert_eq!(sim.observed.services["web-stable"].managed_by.as_deref(), Some("web"));
    let canary = sim.observed.rollout.spec.strategy.canary.as_mut().unwrap();
    canary.traffic_routing = None;
    canary.stable_service = None;
    canary.canary_service = None;
    sim.settle();
    for name in ["web-stable", "web-canary"] {
        assert_eq!(sim.selector(name), None, "{name} selects the app's pods again");
        assert_eq!(sim.observed.services[name].managed_by, None);
    }
}

#[test]
fn no_progress_for_the_deadline_is_degraded() {
    let mut spec = rollout(4, vec![set_weight(25), pause(None)]);
    spec.spec.progress_deadline_seconds = Some(60);
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    sim.ready = false;
    sim.update_template("v2");
    sim.settle();
    sim.wait(61);
    assert_eq!(phase(&sim), "Degraded");
    assert!(sim.status().message.unwrap_or_default().starts_with("ProgressDeadlineExceeded: ReplicaSet"));
    assert_eq!(sim.status().abort, None);
    // Pods that finally come up are progress again.
    sim.ready = true;
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
}

#[test]
fn no_progress_for_the_deadline_can_abort() {
    let mut spec = rollout(4, vec![set_weight(25), pause(None)]);
    spec.spec.progress_deadline_seconds = Some(60);
    spec.spec.progress_deadline_abort = Some(true);
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    sim.ready = false;
    sim.update_template("v2");
    sim.settle();
    assert_eq!(phase(&sim), "Progressing");
    let plan = plan(&sim.observed);
    assert_eq!(plan.requeue_at, Some(sim.observed.now + SignedDuration::from_secs(60)), "requeued at the deadline");
    sim.wait(61);
    let status = sim.status();
    assert_eq!(phase(&sim), "Degraded");
    let message = status.message.unwrap_or_default();
    assert!(message.starts_with("RolloutAborted: Rollout aborted update to revision 2: ReplicaSet"), "{message}");
    assert!(message.contains("has timed out progressing"), "{message}");
    assert_eq!(status.abort, Some(true), "progressDeadlineAbort aborts");
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 0, "the canary goes away");
}

#[test]
fn a_weight_step_lands_with_its_service_switch_weights_and_next_pause_in_one_status_write() {
    let steps = vec![set_weight(20), pause(Some(10)), set_weight(50), pause(Some(10)), set_weight(100)];
    let mut sim = Sim::new(observed(with_istio(rollout(2, steps))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    assert_eq!((sim.status().current_step_index, sim.vs_weights()), (Some(1), (80, 20)));
    let writes_weight = |plan: &Plan, weight: i32| {
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::SetVirtualServiceWeights { canary_weight, .. } if *canary_weight == weight))
    };
    let first = sim.plans.iter().find(|p| writes_weight(p, 20)).expect("a plan writes weight 20");
    assert_eq!(first.status.current_step_index, Some(1), "the step completes with its weights");
    assert!(first.status.pause_conditions.is_some(), "and the pause starts in the same write");
    let canary_switch = first.actions.iter().position(|a| a.points_service_at("web-canary", &hash_of("v2")));
    let weight = first.actions.iter().position(|a| matches!(a, Action::SetVirtualServiceWeights { .. }));
    assert!(
        canary_switch.is_some() && canary_switch < weight,
        "the canary Service is pointed at the new pods first, in the same plan: {:?}",
        first.actions
    );

    // At the pause's expiry one plan writes weight 50, completes that step and starts the next pause.
    let expiry = sim.observed.now + SignedDuration::from_secs(10);
    sim.observed.now = expiry;
    let plan = sim.step();
    assert!(writes_weight(&plan, 50));
    assert_eq!(plan.status.current_step_index, Some(3));
    assert_eq!(plan.status.pause_conditions.as_ref().map(|p| p[0].start_time.0), Some(expiry));
    assert_eq!(plan.pause_expired_at, Some(expiry));
    assert_eq!(plan.requeue_at, Some(expiry + SignedDuration::from_secs(10)));
}

#[test]
fn promote_full_overrides_an_abort() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None), set_weight(50)]);
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.abort = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Degraded");
    // What `kubectl argo rollouts promote --full` and Argo CD's promote-full action send.
    sim.set_status(|s| s.promote_full = Some(true));
    sim.settle();
    assert_eq!(phase(&sim), "Healthy");
    let status = sim.status();
    assert_eq!((status.abort, status.aborted_at, status.promote_full), (None, None, None));
    assert_eq!(status.stable_rs, Some(hash_of("v2")));
    assert!(sim.plans.iter().flat_map(|p| &p.events).any(|e| e.message.ends_with("Full promotion requested")));
}

#[test]
fn an_abort_after_the_stable_switch_is_refused_with_a_reason() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50)]))));
    sim.settle();
    let v2 = hash_of("v2");
    sim.update_template("v2");
    sim.settle();
    sim.wait(2);
    assert_eq!(sim.selector("web-stable"), Some(v2.clone()), "switched; the weights wait to return");
    assert_eq!(sim.vs_weights(), (0, 100));
    sim.set_status(|s| s.abort = Some(true));
    let plan = sim.step();
    let message = plan.status.message.clone().unwrap_or_default();
    assert!(message.starts_with(&format!("abort ignored: revision 2 ({v2}) is already stable; use undo")), "{message}");
    assert!(plan.events.iter().any(|e| e.warning && e.reason == "RolloutAbortIgnored"), "{:?}", plan.events);
    assert_eq!(plan.status.abort, None);
    sim.wait(2);
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!(sim.vs_weights(), (100, 0));
}

#[test]
fn waiting_for_the_stable_to_shrink_counts_the_pods_to_go() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None)]);
    sim.ready = false;
    sim.update_template("v2");
    sim.step();
    // The stable was asked for 3 pods and still has 4: one is terminating.
    let v1 = hash_of("v1");
    let stable = sim.observed.replica_sets.iter_mut().find(|rs| rs.hash == v1).unwrap();
    assert_eq!(stable.spec_replicas, 3);
    stable.status_replicas = 4;
    let canary = sim.observed.replica_sets.iter_mut().find(|rs| rs.hash != v1).unwrap();
    canary.available = canary.spec_replicas;
    let message = plan(&sim.observed).status.message.unwrap_or_default();
    assert!(message.ends_with("to scale down to 3 pods: 1 to terminate"), "{message}");
}

#[test]
fn times_past_the_end_of_the_calendar_are_never_a_panic() {
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(Some(10))]))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    let far = Time(Timestamp::MAX);
    sim.set_status(|s| {
        s.canary.get_or_insert_with(Default::default).traffic_changed_at = Some(MicroTime(Timestamp::MAX));
        for pause in s.pause_conditions.iter_mut().flatten() {
            pause.start_time = far.clone();
        }
        for condition in s.conditions.iter_mut().flatten() {
            condition.last_update_time = far.clone();
        }
    });
    let plan = plan(&sim.observed);
    assert_eq!(plan.requeue_at, Some(Timestamp::MAX));
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

#[test]
fn the_workload_generation_is_annotated_and_observed_in_every_state() {
    let mut sim = workload_ref_sim(ScaleDown::Never, vec![set_weight(25), pause(None)]);
    let annotation = |sim: &Sim| {
        sim.observed.rollout.metadata.annotations.as_ref().and_then(|a| a.get(WORKLOAD_GENERATION_ANNOTATION).cloned())
    };
    assert_eq!(annotation(&sim).as_deref(), Some("1"));
    assert_eq!(sim.status().workload_observed_generation.as_deref(), Some("1"));
    // The Deployment's template changes: generation 2.
    let workload = sim.observed.workload.as_mut().unwrap();
    workload.template = template("v2");
    workload.generation = Some(2);
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
    assert_eq!(annotation(&sim).as_deref(), Some("2"));
    assert_eq!(sim.status().workload_observed_generation.as_deref(), Some("2"));
    let revision = sim.observed.rollout.metadata.annotations.as_ref().unwrap()[REVISION_ANNOTATION].clone();
    assert_eq!(revision, "2");
}

#[test]
fn scale_down_keeps_the_deployment_at_zero_at_every_step() {
    for mode in [ScaleDown::OnSuccess, ScaleDown::Progressively] {
        let mut sim = workload_ref_sim(mode, vec![set_weight(25), pause(None)]);
        let deployment = |sim: &Sim| sim.observed.workload.as_ref().unwrap().deployment_replicas;
        assert_eq!(deployment(&sim), Some(0), "{mode:?}: scaled down once the Rollout serves");
        let workload = sim.observed.workload.as_mut().unwrap();
        workload.template = template("v2");
        workload.generation = Some(2);
        sim.settle();
        assert_eq!(phase(&sim), "Paused");
        // A GitOps re-sync (or `kubectl scale`) mid-canary.
        sim.observed.workload.as_mut().unwrap().deployment_replicas = Some(4);
        sim.settle();
        assert_eq!(deployment(&sim), Some(0), "{mode:?}: undone at the pause of a later revision");
    }
}

/// Runs controllers that each make one write and crash, `restart` apart, until `done`; returns
/// the traffic (weights, stable and canary selectors) after each write with its time.
fn crash_after_every_write(
    sim: &mut Sim,
    restart: SignedDuration,
    done: impl Fn(&Sim) -> bool,
) -> Vec<(Timestamp, TrafficSeen)> {
    let mut seen = vec![(sim.observed.now, TrafficSeen::of(sim))];
    for _ in 0..400 {
        if done(sim) {
            return seen;
        }
        sim.catch_up();
        let plan = plan(&sim.observed);
        match plan.actions.first() {
            Some(first) => sim.apply_action(first),
            None => sim.observed.rollout.status = Some(plan.status.clone()),
        }
        let traffic = TrafficSeen::of(sim);
        if seen.last().is_none_or(|(_, last)| *last != traffic) {
            seen.push((sim.observed.now, traffic));
        }
        sim.observed.now += restart;
    }
    panic!("not done after 400 writes: {:#?}", sim.status());
}

#[derive(Clone, Debug, PartialEq)]
struct TrafficSeen {
    weights: (i64, i64),
    stable: Option<String>,
    canary: Option<String>,
}

impl TrafficSeen {
    fn of(sim: &Sim) -> Self {
        TrafficSeen {
            weights: sim.vs_weights(),
            stable: sim.selector("web-stable"),
            canary: sim.selector("web-canary"),
        }
    }
}

/// Time from the first state that `from` accepts to the next one that `to` accepts.
fn gap(
    seen: &[(Timestamp, TrafficSeen)],
    from: impl Fn(&TrafficSeen) -> bool,
    to: impl Fn(&TrafficSeen) -> bool,
) -> SignedDuration {
    let start = seen.iter().position(|(_, t)| from(t)).expect("the first state was seen");
    let end = start + seen[start..].iter().position(|(_, t)| to(t)).expect("the second state was seen");
    seen[end].0.duration_since(seen[start].0)
}

#[test]
fn every_settle_gap_survives_a_crash_after_any_write() {
    let settle = SignedDuration::from_secs(2);
    let restart = SignedDuration::from_millis(500);
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));

    // Promotion: weight 100 to the canary, settle, stable Service to v2, settle, weights home.
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(None)]))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.pause_conditions = None);
    let seen = crash_after_every_write(&mut sim, restart, |sim| phase(sim) == "Healthy");
    let switch = gap(&seen, |t| t.weights == (0, 100), |t| t.stable.as_deref() == Some(v2.as_str()));
    assert!(switch >= settle, "stable Service switched {switch} after the canary got all traffic: {seen:#?}");
    let home = gap(&seen, |t| t.stable.as_deref() == Some(v2.as_str()), |t| t.weights == (100, 0));
    assert!(home >= settle, "weights returned {home} after the stable Service switch: {seen:#?}");

    // Abort: weight back to stable, settle, canary Service back to the stable pods.
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(None)]))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.abort = Some(true));
    let seen =
        crash_after_every_write(&mut sim, restart, |sim| sim.selector("web-canary").as_deref() == Some(v1.as_str()));
    let back = gap(&seen, |t| t.weights == (100, 0), |t| t.canary.as_deref() == Some(v1.as_str()));
    assert!(back >= settle, "canary Service went back {back} after the weights: {seen:#?}");
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

#[test]
fn a_drifted_stable_selector_is_put_back() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    sim.observed
        .services
        .get_mut("web-stable")
        .unwrap()
        .selector
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "nopods".into());
    sim.settle();
    assert_eq!(sim.selector("web-stable"), Some(v1), "re-asserted during the pause");
    assert_eq!(sim.vs_weights(), (90, 10));
}

#[test]
fn no_weight_moves_while_the_stable_service_selects_no_available_pods() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    // The stable pods all fail (a node drained, a crash loop): the stable Service selects none.
    sim.failing.push(v1);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10), "promote moves no traffic while the stable serves nothing");
    let message = sim.status().message.unwrap_or_default();
    assert!(message.contains("waiting for Service web-stable to select available pods"), "{message}");
    sim.failing.clear();
    sim.settle();
    assert_eq!(sim.vs_weights(), (50, 50), "and moves once it does");
}

#[test]
fn a_deleted_stable_replica_set_is_created_again_and_the_rollout_completes() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    sim.ready = false;
    sim.observed.replica_sets.retain(|rs| rs.hash != v1);
    let plan = sim.step();
    let recreated = plan.actions.iter().find_map(|a| match a {
        Action::CreateReplicaSet(rs) => Some(rs.clone()),
        _ => None,
    });
    let recreated = recreated.expect("the stable ReplicaSet is created again");
    assert_eq!(recreated.metadata.name.as_deref(), Some(format!("web-{v1}").as_str()));
    assert_eq!(recreated.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(
        recreated.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
            .image
            .as_deref(),
        Some("v1")
    );
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 1, "the canary keeps its size");
    // Promote while the new stable pods are not ready: nothing moves until they are.
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.vs_weights(), (90, 10));
    sim.ready = true;
    sim.settle();
    assert_eq!(sim.vs_weights(), (50, 50));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(5);
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn a_stable_replica_set_without_a_record_is_reported_and_nothing_moves() {
    let mut sim = istio_paused_at_ten();
    let v1 = hash_of("v1");
    sim.records.clear();
    sim.observed.replica_sets.retain(|rs| rs.hash != v1);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    let message = sim.status().message.unwrap_or_default();
    assert!(
        message.contains(&format!("stable ReplicaSet web-{v1} was deleted and its pod template was not recorded")),
        "{message}"
    );
    assert_eq!(sim.vs_weights(), (90, 10));
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 1, "the canary is not grown to replace it");
    // A full promotion moves traffic to the canary, the only pods left.
    sim.set_status(|s| s.promote_full = Some(true));
    sim.run_for(5);
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(sim.selector("web-stable"), Some(hash_of("v2")));
    assert_eq!(phase(&sim), "Healthy");
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

#[test]
fn ephemeral_metadata_follows_each_replica_set_role() {
    let mut sim =
        Sim::new(observed(with_istio(with_ephemeral_metadata(rollout(2, vec![set_weight(50), pause(None)])))));
    let first = sim.step();
    let created = first.actions.iter().find_map(|a| match a {
        Action::CreateReplicaSet(rs) => Some(rs.clone()),
        _ => None,
    });
    let template_labels = created.unwrap().spec.unwrap().template.unwrap().metadata.unwrap().labels.unwrap();
    assert_eq!(template_labels["role"], "stable", "the first revision is stable at once");
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    let role =
        |sim: &Sim, hash: &str| sim.rs(hash).unwrap().injected.labels.clone().unwrap_or_default().get("role").cloned();
    assert_eq!(role(&sim, &v1).as_deref(), Some("stable"));

    sim.update_template("v2");
    sim.settle();
    assert_eq!((role(&sim, &v1).as_deref(), role(&sim, &v2).as_deref()), (Some("stable"), Some("canary")));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(5);
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!((role(&sim, &v1), role(&sim, &v2).as_deref()), (None, Some("stable")), "old pods lose theirs");
    // The promotion changed the template, relabelled the pods, then recorded it, in that order.
    let actions: Vec<&Action> = sim.plans.iter().flat_map(|p| &p.actions).collect();
    let position = |wanted: fn(&Action) -> bool| actions.iter().rposition(|a| wanted(a)).unwrap();
    let template = position(
        |a| matches!(a, Action::SetTemplateMetadata { change, .. } if change.labels.get("role") == Some(&Some("stable".into()))),
    );
    let pods = position(
        |a| matches!(a, Action::SetPodMetadata { change, .. } if change.labels.get("role") == Some(&Some("stable".into()))),
    );
    let record = position(
        |a| matches!(a, Action::PatchReplicaSet { annotations, .. } if annotations.get(EPHEMERAL_METADATA_ANNOTATION).is_some_and(|r| r.as_deref().is_some_and(|r| r.contains("stable")))),
    );
    assert!(template < pods && pods < record, "{actions:#?}");
    let removal = actions.iter().find_map(|a| match a {
        Action::SetPodMetadata { hash, change, .. } if *hash == v2 => change.annotations.get("canary-since").cloned(),
        _ => None,
    });
    assert_eq!(removal, Some(None), "the canary's annotation is removed at promotion");
}

#[test]
fn a_replica_set_named_by_the_legacy_hash_is_still_the_current_revision() {
    let mut sim = healthy_basic(vec![set_weight(25), pause(None)]);
    let legacy = hash::legacy_pod_template_hash(&template("v1"), None);
    assert_ne!(legacy, hash_of("v1"));
    // As an earlier version of the controller left it.
    for rs in &mut sim.observed.replica_sets {
        rs.hash = legacy.clone();
        rs.name = format!("web-{legacy}");
    }
    sim.set_status(|s| {
        s.current_pod_hash = Some(legacy.clone());
        s.stable_rs = Some(legacy.clone());
    });
    let plan = sim.step();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))), "{:?}", plan.actions);
    assert_eq!(phase(&sim), "Healthy");
    sim.update_template("v2");
    sim.settle();
    assert!(sim.rs(&hash_of("v2")).is_some(), "a new revision gets the new hash");
}

#[test]
fn a_name_taken_by_another_object_counts_a_collision_and_changes_the_hash() {
    let mut sim = healthy_basic(vec![set_weight(25)]);
    let before = hash_of("v1");
    sim.set_status(|s| s.collision_count = None);
    let bumped = hash_collision(&sim.observed);
    assert_eq!(bumped.status.collision_count, Some(1));
    assert!(bumped.actions.is_empty());
    assert_ne!(hash::pod_template_hash(&template("v1"), &[], Some(1)), before);
}

#[test]
fn an_unreadable_rollout_is_degraded_with_the_readers_error() {
    let status = unreadable("web", "spec.replicas: invalid type: string \"three\"", t(0));
    assert_eq!(status.phase.as_deref(), Some("Degraded"));
    let message = status.message.unwrap();
    assert!(
        message.starts_with("InvalidSpec: The Rollout \"web\" is invalid: it could not be read (spec.replicas"),
        "{message}"
    );
    let conditions = status.conditions.unwrap();
    assert_eq!((conditions[0].type_.as_str(), conditions[0].status.as_str()), ("InvalidSpec", "True"));
}
