//! Property tests of the invariants in `docs/architecture.md`, over random rollouts.

use super::analysis::{analysis, analysis_step, with_templates};
use super::apisix::apisix_observed;
use super::gateway_api::gateway_observed;
use super::header_routes::header_step;
use super::nginx::nginx_observed;
use super::sim::Sim;
use super::*;
use crate::api::{AnalysisPhase, RolloutAnalysisBackground};
use proptest::prelude::*;

/// A step; a weight is drawn in thousandths of the total (`check_invariants` scales it).
fn any_step() -> impl Strategy<Value = CanaryStep> {
    prop_oneof![
        (0..=1000i32).prop_map(set_weight),
        proptest::option::of(0..5i32).prop_map(pause),
        Just(analysis_step("smoke")),
        Just(header_step(HEADER_ROUTE, Some("yes"))),
        Just(header_step(HEADER_ROUTE, None))
    ]
}

const HEADER_ROUTE: &str = "by-header";

/// How the canary's traffic is split.
#[derive(Clone, Copy, Debug)]
enum Traffic {
    /// By pod counts alone.
    Pods,
    /// By pod counts, with stable and canary Services.
    Services,
    Istio,
    Nginx,
    Apisix,
    GatewayApi,
}

/// Replicas, steps, traffic, maxTrafficWeight (when routed), background analysis from this
/// step, and the script.
type Scenario = (i32, Vec<CanaryStep>, Traffic, Option<i32>, Option<i32>, Vec<u8>);

fn any_scenario() -> impl Strategy<Value = Scenario> {
    (
        1..8i32,
        proptest::collection::vec(any_step(), 0..6),
        prop_oneof![
            Just(Traffic::Pods),
            Just(Traffic::Services),
            Just(Traffic::Istio),
            Just(Traffic::Nginx),
            Just(Traffic::Apisix),
            Just(Traffic::GatewayApi)
        ],
        proptest::option::weighted(0.3, prop_oneof![Just(1000), 1..=2000i32]),
        proptest::option::of(0..3i32),
        proptest::collection::vec(any::<u8>(), 1..40),
    )
}

const RUN_PHASES: [AnalysisPhase; 5] = [
    AnalysisPhase::Running,
    AnalysisPhase::Successful,
    AnalysisPhase::Failed,
    AnalysisPhase::Error,
    AnalysisPhase::Inconclusive,
];

/// Drives random user actions (template changes, promotes, aborts, retries, scaling, time) and
/// checks the invariants after every reconcile.
fn check_invariants((replicas, steps, traffic, max_weight, background, script): Scenario) -> Result<(), TestCaseError> {
    let mut spec = rollout(replicas, steps);
    spec.spec.strategy.canary.as_mut().unwrap().analysis = background.map(|starting_step| RolloutAnalysisBackground {
        analysis: analysis("smoke", json!([])),
        starting_step: Some(starting_step),
    });
    let observed = match traffic {
        Traffic::Pods => observed(spec),
        Traffic::Services => observed(with_services(spec)),
        Traffic::Istio => observed(with_istio(spec)),
        Traffic::Nginx => nginx_observed(spec),
        Traffic::GatewayApi => gateway_observed(spec, crate::api::RouteKind::HttpRoute),
        Traffic::Apisix => apisix_observed(spec),
    };
    let mut observed = observed;
    let canary = observed.rollout.spec.strategy.canary.as_mut().unwrap();
    if let Some(routing) = canary.traffic_routing.as_mut() {
        routing.managed_routes = Some(vec![crate::api::ManagedRoute { name: HEADER_ROUTE.into() }]);
        routing.max_traffic_weight = max_weight;
    }
    let max = canary.max_weight();
    for weight in canary.steps.iter_mut().flatten().filter_map(|s| s.set_weight.as_mut()) {
        *weight = *weight * max / 1000;
    }
    let mut sim = with_templates(Sim::new(observed));
    let mut image = 1;
    for byte in script {
        match byte % 10 {
            0 => {
                image += 1;
                sim.update_template(&format!("v{image}"));
            }
            1 => sim.set_status(|s| s.pause_conditions = None),
            2 => sim.set_status(|s| s.abort = Some(true)),
            3 => sim.set_status(|s| s.abort = Some(false)),
            4 => sim.observed.rollout.spec.replicas = Some(i32::from(byte % 7) + 1),
            5 => sim.ready = !sim.ready,
            // The AnalysisRun controller ends or runs the newest run.
            8 => {
                if let Some(name) = sim.observed.analysis_runs.last().and_then(|r| r.metadata.name.clone()) {
                    sim.end_run(&name, RUN_PHASES[usize::from(byte / 10) % RUN_PHASES.len()]);
                }
            }
            9 => sim.set_status(|s| s.promote_full = Some(true)),
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
            let steps =
                sim.observed.rollout.spec.strategy.canary.as_ref().and_then(|c| c.steps.clone()).unwrap_or_default();
            let at_analysis =
                usize::try_from(index_before).ok().and_then(|i| steps.get(i)).is_some_and(|s| s.analysis.is_some());
            if same_revision
                && !jumps
                && !plan.status.abort.unwrap_or(false)
                && at_analysis
                && index_after > index_before
            {
                // An analysis step is left only when its run succeeded, or was Inconclusive and promoted.
                let run =
                    before.canary.as_ref().and_then(|c| c.current_step_analysis_run_status.as_ref()).and_then(|s| {
                        sim.observed.analysis_runs.iter().find(|r| r.metadata.name.as_ref() == Some(&s.name))
                    });
                let phase = run.and_then(|r| r.status.as_ref()).map(|s| s.phase);
                prop_assert!(
                    matches!(phase, Some(AnalysisPhase::Successful | AnalysisPhase::Inconclusive)),
                    "analysis step {index_before} left with its run {phase:?}"
                );
            }
            if same_revision && !jumps && before.abort == plan.status.abort {
                // A second step only when it is the setWeight step whose weight this plan writes,
                // or a header step whose routes are in place once this plan's writes are done.
                let second_step = usize::try_from(index_before + 1).unwrap_or(0);
                let header_step_next = steps.get(second_step).is_some_and(|s| s.set_header_route.is_some());
                let writes_its_weight = header_step_next || plan.actions.iter().any(|a| {
                    matches!(a, Action::SetVirtualServiceWeights { canary_weight, .. } | Action::PatchIngress { canary_weight, .. }
                        | Action::PatchRoute { canary_weight: Some(canary_weight), .. }
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
                    Action::SetVirtualServiceWeights { canary_weight, .. }
                    | Action::PatchIngress { canary_weight, .. }
                    | Action::PatchRoute { canary_weight: Some(canary_weight), .. } => {
                        prop_assert!((0..=max).contains(canary_weight));
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
                prop_assert_eq!(weights.canary.weight + weights.stable.weight, max);
            }
            sim.apply(&plan);
            if plan.status.abort == Some(true) {
                for run in &sim.observed.analysis_runs {
                    let running = run.status.as_ref().is_none_or(|s| !s.phase.completed());
                    prop_assert!(
                        !running || run.spec.terminate,
                        "aborted with run {:?} still running",
                        run.metadata.name
                    );
                }
            }
            if sim.header_route_present() {
                // Header routes reach the canary: its Service selects the current revision's pods.
                let (canary, current) = (sim.selector("web-canary"), sim.status().current_pod_hash);
                prop_assert!(
                    canary == current && canary.as_deref().and_then(|h| sim.rs(h)).is_some_and(|rs| rs.available > 0),
                    "a header route while the canary Service selects {canary:?} (current {current:?})"
                );
            }
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

impl Sim {
    /// Whether a header route is in place on any router's object.
    fn header_route_present(&self) -> bool {
        let named = |value: &serde_json::Value| value["name"] == HEADER_ROUTE;
        let in_vs = self
            .observed
            .virtual_services
            .iter()
            .flatten()
            .any(|(_, vs)| vs.spec["http"].as_array().is_some_and(|http| http.iter().any(named)));
        let in_routes = self.observed.route_objects.values().flatten().flatten().any(|((_, name), object)| {
            name == HEADER_ROUTE || object.data["spec"]["rules"].as_array().is_some_and(|rules| rules.iter().any(named))
        });
        in_vs || in_routes
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_the_invariants(scenario in any_scenario()) {
        check_invariants(scenario)?;
    }
}
