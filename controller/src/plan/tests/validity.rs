//! Invalid Rollouts are reported and nothing is written; bad times and unreadable objects
//! never panic.

use super::sim::Sim;
use super::*;

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

#[test]
fn a_deletion_waiting_for_the_deployment_looks_again_when_it_would_give_up() {
    let mut sim = workload_ref_sim(ScaleDown::OnSuccess, vec![set_weight(50)]);
    sim.observed.rollout.metadata.deletion_timestamp = Some(Time(sim.observed.now));
    let waiting = plan(&sim.observed);
    assert!(!waiting.actions.contains(&Action::RemoveFinalizer));
    assert_eq!(waiting.requeue_at, Some(sim.observed.now + SignedDuration::from_secs(600)));
}
