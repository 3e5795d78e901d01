//! Rollouts decided by analysis: step and background runs started, followed and stopped; a
//! failure aborts through the request-safe path; Inconclusive pauses until promoted; retries
//! and new revisions start runs of their own; history is kept to its limits; bad analysis
//! specs are InvalidSpec before anything is written.

use super::*;
use crate::api::{
    AnalysisPhase, AnalysisRun, AnalysisTemplateSpec, ROLLOUT_TYPE_LABEL, RolloutAnalysis, RolloutAnalysisBackground,
    STEP_INDEX_LABEL,
};

pub(super) fn analysis(template: &str, args: serde_json::Value) -> RolloutAnalysis {
    serde_json::from_value(json!({"templates": [{"templateName": template}], "args": args})).unwrap()
}

pub(super) fn analysis_step(template: &str) -> CanaryStep {
    CanaryStep { analysis: Some(analysis(template, json!([]))), ..Default::default() }
}

fn template(spec: serde_json::Value) -> AnalysisTemplateSpec {
    serde_json::from_value(spec).unwrap()
}

/// `success-rate`: a bounded Prometheus metric with a `service` and a `hash` argument.
fn success_rate() -> AnalysisTemplateSpec {
    template(json!({
        "args": [{"name": "service"}, {"name": "hash"}],
        "metrics": [{"name": "success-rate", "interval": "1m", "count": 3, "failureLimit": 1,
            "successCondition": "result[0] >= 0.99",
            "provider": {"prometheus": {"address": "http://prom", "query": "rate{{args.service}}{hash=\"{{args.hash}}\"}"}}}]
    }))
}

/// `smoke`: one web measurement, no arguments.
fn smoke() -> AnalysisTemplateSpec {
    template(json!({"metrics": [{"name": "smoke", "provider": {"web": {"url": "http://smoke"}}}]}))
}

pub(super) fn with_templates(mut sim: Sim) -> Sim {
    sim.observed.analysis_templates.insert((false, "success-rate".into()), success_rate());
    sim.observed.analysis_templates.insert((false, "smoke".into()), smoke());
    sim
}

pub(super) fn background_args() -> serde_json::Value {
    json!([{"name": "service", "value": "web-canary"}, {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}])
}

/// An Istio canary of 4 pods with `steps`, optionally background analysis from `starting_step`,
/// healthy at v1 and then updated to v2 (not settled).
fn istio_with_analysis(steps: Vec<CanaryStep>, background: Option<i32>) -> Sim {
    let mut rollout = with_istio(rollout(4, steps));
    if let Some(starting_step) = background {
        rollout.spec.strategy.canary.as_mut().unwrap().analysis = Some(RolloutAnalysisBackground {
            analysis: analysis("success-rate", background_args()),
            starting_step: Some(starting_step),
        });
    }
    let mut sim = with_templates(Sim::new(observed(rollout)));
    sim.settle();
    assert!(sim.observed.analysis_runs.is_empty(), "no run for the initial deploy");
    sim.update_template("v2");
    sim.settle();
    sim
}

impl Sim {
    fn run(&self, name: &str) -> &AnalysisRun {
        self.observed.analysis_runs.iter().find(|r| r.metadata.name.as_deref() == Some(name)).expect("run exists")
    }

    fn run_names(&self) -> Vec<String> {
        self.observed.analysis_runs.iter().map(|r| r.metadata.name.clone().unwrap()).collect()
    }

    fn step_run(&self) -> Option<String> {
        self.status().canary?.current_step_analysis_run_status.map(|s| s.name)
    }

    fn background_run(&self) -> Option<String> {
        self.status().canary?.current_background_analysis_run_status.map(|s| s.name)
    }

    /// The AnalysisRun controller's part: the run ends `phase`, its first metric too.
    pub(super) fn end_run(&mut self, name: &str, phase: AnalysisPhase) {
        let metric = self.run(name).spec.metrics[0].name.clone();
        let measurement = json!({"phase": phase, "value": "[0.82]",
            "message": "value [0.82] does not satisfy successCondition \"result[0] >= 0.99\""});
        let status = json!({"phase": phase, "message": format!("Metric \"{metric}\" assessed {phase}"),
            "metricResults": [{"name": metric, "phase": phase, "count": 2, "failed": 2, "inconclusive": 1,
                "measurements": [measurement]}]});
        self.analysis_run_mut(name).unwrap().status = Some(serde_json::from_value(status).unwrap());
    }

    /// What Argo's plugin sends to promote past an Inconclusive step run.
    fn promote_inconclusive_step(&mut self) {
        self.set_status(|s| {
            s.pause_conditions = None;
            s.controller_pause = Some(false);
            s.current_step_index = s.current_step_index.map(|i| i + 1);
        });
    }
}

#[test]
fn an_analysis_step_runs_its_templates_and_the_step_completes_when_the_run_succeeds() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50), pause(None)];
    let mut sim = istio_with_analysis(steps, None);
    let v2 = hash_of("v2");
    let name = format!("web-{v2}-2-1");
    assert_eq!(sim.step_run().as_deref(), Some(name.as_str()), "the run of step 1 is followed");
    assert_eq!(sim.status().current_step_index, Some(1));
    let run = sim.run(&name);
    let labels = run.metadata.labels.clone().unwrap();
    assert_eq!(labels[ROLLOUT_TYPE_LABEL], "Step");
    assert_eq!(labels[STEP_INDEX_LABEL], "1");
    assert_eq!(labels[POD_TEMPLATE_HASH_LABEL], v2);
    assert_eq!(labels["app"], "web", "the selector's labels find the run");
    assert_eq!(run.metadata.annotations.clone().unwrap()[REVISION_ANNOTATION], "2");
    let owner = &run.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Rollout", "uid-1", Some(true)));
    assert!(sim.status().message.unwrap().contains(&format!("analysis run {name}")), "says what it waits for");

    sim.end_run(&name, AnalysisPhase::Running);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1), "a Running run holds the step");
    assert_eq!(sim.vs_weights(), (75, 25));
    sim.end_run(&name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3), "past the analysis and the next setWeight");
    assert_eq!(sim.vs_weights(), (50, 50));
    assert_eq!(sim.step_run(), None, "the step's run is no longer followed");
    assert!(sim.events().contains(&"AnalysisRunSuccessful"));
}

#[test]
fn a_failed_step_run_aborts_through_the_request_safe_path_and_names_the_metric() {
    // A step analysis with arguments from the Rollout's fields and the stable hash.
    let args = json!([{"name": "service", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "hash", "valueFrom": {"podTemplateHashValue": "Stable"}}]);
    let step = CanaryStep { analysis: Some(analysis("success-rate", args)), ..Default::default() };
    let mut sim = istio_with_analysis(vec![set_weight(25), step, set_weight(50)], None);
    let name = sim.step_run().expect("step run started");
    let args: Vec<(String, Option<String>)> =
        sim.run(&name).spec.args.iter().map(|a| (a.name.clone(), a.value.clone())).collect();
    assert_eq!(args, [("service".into(), Some("web".into())), ("hash".into(), Some(hash_of("v1")))]);

    sim.end_run(&name, AnalysisPhase::Failed);
    let plan = sim.step();
    assert_eq!(plan.status.abort, Some(true));
    let progressing = plan.status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(progressing.reason, "RolloutAborted");
    assert_eq!(
        progressing.message,
        format!(
            "Rollout aborted update to revision 2: metric \"success-rate\" failed: value [0.82] does not satisfy successCondition \"result[0] >= 0.99\" (2 failures > failureLimit 1) (analysis run {name})"
        )
    );
    assert!(plan.events.iter().any(|e| e.reason == "AnalysisRunFailed"
        && e.warning
        && e.message == format!("Step Analysis Run '{name}' Status New: 'Failed' Previous: 'Pending'")));
    assert!(
        matches!(plan.actions.first(), Some(Action::SetVirtualServiceWeights { canary_weight: 0, .. })),
        "traffic goes home first"
    );
    sim.run_for(40);
    assert_eq!(sim.vs_weights(), (100, 0));
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 0, "the canary is scaled down after its delay");
    assert_eq!(phase(&sim), "Degraded");
    assert!(sim.status().message.unwrap().contains("metric \"success-rate\" failed"), "{:?}", sim.status().message);
    assert_eq!(sim.step_run().as_deref(), Some(name.as_str()), "the failed run stays in the status");
}

#[test]
fn an_inconclusive_step_run_pauses_until_promoted() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50), pause(None)];
    for plugin_promote in [true, false] {
        let mut sim = istio_with_analysis(steps.clone(), None);
        let name = sim.step_run().unwrap();
        sim.end_run(&name, AnalysisPhase::Inconclusive);
        sim.settle();
        let status = sim.status();
        assert_eq!(phase(&sim), "Paused");
        assert_eq!(status.pause_conditions.as_ref().unwrap()[0].reason, "InconclusiveAnalysisRun");
        let message = status.message.unwrap();
        assert!(message.contains("was inconclusive") && message.contains("promote to go on"), "{message}");
        sim.wait(3600);
        assert_eq!(sim.status().current_step_index, Some(1), "held until someone decides");
        if plugin_promote {
            sim.promote_inconclusive_step();
        } else {
            sim.set_status(|s| s.pause_conditions = None);
        }
        sim.settle();
        assert_eq!(sim.status().current_step_index, Some(3), "promote moved past the analysis step");
        assert_eq!(sim.vs_weights(), (50, 50));
        assert_eq!(phase(&sim), "Paused", "and the pause step after it still holds");
        assert!(sim.status().pause_conditions.unwrap().iter().any(|c| c.reason == "CanaryPauseStep"));
    }
}

#[test]
fn background_analysis_starts_at_its_step_runs_through_the_steps_and_its_failure_aborts() {
    let steps = vec![set_weight(25), pause(None), set_weight(50), pause(None)];
    let mut sim = istio_with_analysis(steps, Some(1));
    assert_eq!(sim.background_run(), Some(format!("web-{}-2", hash_of("v2"))), "started on reaching step 1");
    let name = sim.background_run().unwrap();
    let hash_arg = sim.run(&name).spec.args.iter().find(|a| a.name == "hash").unwrap().value.clone();
    assert_eq!(hash_arg, Some(hash_of("v2")), "podTemplateHashValue Latest");
    sim.end_run(&name, AnalysisPhase::Running);
    sim.set_status(|s| s.pause_conditions = None);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(3), "a background run doesn't gate the steps");
    assert_eq!(sim.run_names(), std::slice::from_ref(&name), "one background run per revision");
    sim.end_run(&name, AnalysisPhase::Failed);
    sim.settle();
    assert_eq!(sim.status().abort, Some(true));
    assert_eq!(sim.vs_weights(), (100, 0));
    assert!(sim.status().message.unwrap().contains(&format!("(analysis run {name})")));
}

#[test]
fn full_promotion_and_a_new_revision_terminate_the_runs_in_flight() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50)];
    let mut sim = istio_with_analysis(steps.clone(), Some(0));
    let (step, background) = (sim.step_run().unwrap(), sim.background_run().unwrap());
    sim.update_template("v3");
    sim.settle();
    assert!(sim.run(&step).spec.terminate && sim.run(&background).spec.terminate, "the old revision's runs stop");
    let v3 = hash_of("v3");
    assert_eq!(sim.background_run(), Some(format!("web-{v3}-3")));
    assert_eq!(sim.step_run(), Some(format!("web-{v3}-3-1")));
    sim.set_status(|s| s.promote_full = Some(true));
    let plan = sim.step();
    let terminated = plan.actions.iter().filter(|a| matches!(a, Action::TerminateAnalysisRun { .. })).count();
    assert_eq!(terminated, 2, "promote --full stops the step and background runs at once");
    sim.run_for(40);
    assert!(sim.observed.analysis_runs.iter().all(|r| r.spec.terminate), "promote --full stops every run");
    assert_eq!((sim.step_run(), sim.background_run()), (None, None));
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn retry_after_an_automatic_abort_starts_a_fresh_run() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50)];
    let mut sim = istio_with_analysis(steps, None);
    let first = sim.step_run().unwrap();
    sim.end_run(&first, AnalysisPhase::Error);
    sim.run_for(40);
    assert_eq!(sim.status().abort, Some(true));
    sim.set_status(|s| s.abort = Some(false));
    sim.settle();
    assert_eq!(sim.step_run(), Some(format!("{first}.1")), "a retry's run is named after the first");
    assert!(!sim.run(&format!("{first}.1")).spec.terminate);
    sim.end_run(&format!("{first}.1"), AnalysisPhase::Successful);
    sim.run_for(40);
    assert_eq!(phase(&sim), "Healthy");
}

#[test]
fn a_run_created_but_not_yet_in_the_cache_is_created_again_not_twice() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50)];
    let mut sim = istio_with_analysis(steps, None);
    let name = sim.step_run().unwrap();
    sim.observed.analysis_runs.clear();
    let plan = sim.step();
    let created: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateAnalysisRun(run) => run.metadata.name.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        std::slice::from_ref(&name),
        "the same name: the apiserver's AlreadyExists says it was created"
    );
    assert_eq!(sim.step_run(), Some(name));
}

#[test]
fn finished_runs_are_kept_to_the_history_limits() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50)];
    let mut sim = istio_with_analysis(steps, None);
    sim.observed.rollout.spec.analysis = Some(
        serde_json::from_value(json!({"successfulRunHistoryLimit": 1, "unsuccessfulRunHistoryLimit": 1})).unwrap(),
    );
    for _ in 0..3 {
        let name = sim.step_run().unwrap();
        sim.end_run(&name, AnalysisPhase::Failed);
        sim.run_for(35);
        sim.set_status(|s| s.abort = Some(false));
        sim.run_for(2);
    }
    let failed = sim
        .observed
        .analysis_runs
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase == AnalysisPhase::Failed))
        .count();
    assert_eq!(failed, 1, "one failed run of history besides none followed: {:?}", sim.run_names());
}

#[test]
fn analysis_that_could_never_run_is_invalid_before_anything_is_written() {
    type BreakIt = Box<dyn Fn(&mut Sim)>;
    let invalid_cases: Vec<(BreakIt, &str)> = vec![
        (
            Box::new(|sim| sim.observed.analysis_templates.clear()),
            "spec.strategy.canary.steps[1].analysis.templates: Invalid value: \"smoke\": AnalysisTemplate 'smoke' not found",
        ),
        (
            Box::new(|sim| {
                let metric = &mut sim.observed.analysis_templates.get_mut(&(false, "smoke".into())).unwrap().metrics[0];
                metric.interval = Some("1m".into());
            }),
            "spec.strategy.canary.steps[1].analysis.templates: Invalid value: \"smoke\": metric \"smoke\" runs indefinitely",
        ),
        (
            Box::new(|sim| {
                let metric = &mut sim.observed.analysis_templates.get_mut(&(false, "smoke".into())).unwrap().metrics[0];
                metric.success_condition = Some("result >=".into());
            }),
            "spec.strategy.canary.steps[1].analysis: Invalid value: \"smoke\": Analysis spec invalid: metrics[0]",
        ),
        (
            Box::new(|sim| {
                sim.observed.rollout.spec.strategy.canary.as_mut().unwrap().analysis =
                    Some(RolloutAnalysisBackground {
                        analysis: analysis("success-rate", json!([{"name": "service", "value": "web"}])),
                        starting_step: None,
                    });
            }),
            "spec.strategy.canary.analysis: Invalid value: \"success-rate\": argument 'hash' needs a value",
        ),
    ];
    for (break_it, expected) in invalid_cases {
        let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50)];
        let mut sim = with_templates(Sim::new(observed(with_istio(rollout(4, steps)))));
        break_it(&mut sim);
        let plan = sim.step();
        assert!(plan.actions.is_empty(), "nothing is written for {expected}: {:?}", plan.actions);
        let message = plan.status.message.unwrap_or_default();
        assert!(message.contains(expected), "expected {expected:?} in {message:?}");
        assert_eq!(plan.status.phase.as_deref(), Some("Degraded"));
    }
}

#[test]
fn a_run_whose_status_write_was_lost_is_taken_up_not_started_again() {
    let steps = vec![set_weight(25), analysis_step("smoke"), set_weight(50)];
    let mut sim = istio_with_analysis(steps, Some(0));
    let (step, background) = (sim.step_run().unwrap(), sim.background_run().unwrap());
    // A crash after the creates, before the status write: the runs exist, the status doesn't say.
    sim.set_status(|s| s.canary.as_mut().unwrap().current_step_analysis_run_status = None);
    sim.set_status(|s| s.canary.as_mut().unwrap().current_background_analysis_run_status = None);
    let plan = sim.step();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateAnalysisRun(_))), "{:?}", plan.actions);
    assert_eq!((sim.step_run(), sim.background_run()), (Some(step.clone()), Some(background)));
    sim.end_run(&step, AnalysisPhase::Running);
    sim.settle();
    assert_eq!(sim.observed.analysis_runs.len(), 2, "no second run: {:?}", sim.run_names());
}
