//! A canary step's analysis: the step completes when its run succeeds; a failed run aborts the
//! update and moves the traffic back; an inconclusive one pauses until promoted; a retry after
//! the abort starts a fresh run.

use anyhow::{Context, Result, ensure};
use e2e::controller::TEST_SETTLE;
use e2e::rollouts::{phase, status};
use k8s_openapi::jiff::SignedDuration;
use kube::ResourceExt;
use rollouts_controller::api::{AnalysisPhase, Argument};

use crate::fixture::{
    APP, BAD, FAILURE_CONDITION, Fixture, GOOD, INCONCLUSIVE, INTERVAL, SUCCESS_RATE, analysis_step, routing,
};
use crate::support::{Aborting, Failure, check_run_identity, completed, failed_measurement, run_name, run_phase, runs};

/// Weight 20, the analysis (step 1), weight 50, a pause (step 3).
fn steps(template: &str) -> String {
    format!("[{{setWeight: 20}}, {}, {{setWeight: 50}}, {{pause: {{}}}}]", analysis_step(template))
}

/// What `gate` says when its second measurement fails.
const GATE_FAILED: Failure<'static> = Failure {
    metric: "success-rate",
    condition: FAILURE_CONDITION,
    failure_condition: true,
    failed: 2,
    failure_limit: 1,
};

/// The update to `rev2` that `gate` failing at step 1 aborts.
fn gate_fails<'a>(f: &'a Fixture, rev2: &'a str) -> Aborting<'a> {
    Aborting {
        rollout: APP,
        routing: routing(),
        stable: &f.rev1,
        canary: rev2,
        step: Some(1),
        failed_from: "Running",
        failure: GATE_FAILED,
    }
}

fn argument(name: &str, value: &str) -> Argument {
    Argument { name: name.into(), value: Some(value.into()), value_from: None }
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_successful_step_analysis_completes_its_step() -> Result<()> {
    let f = Fixture::healthy("ra-step-ok", &steps("gate"), "", GOOD).await?;
    let watch = f.ns.watch_traffic(&routing()).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let name = run_name(APP, &rev2, 2, Some(1));
    // While it runs, the Rollout's status names it.
    f.ns.wait_rollout(APP, "the step's run in the status", |r| {
        let canary = status(r).canary.unwrap_or_default();
        canary.current_step_analysis_run_status.is_some_and(|s| s.name == name && s.status == "Running")
    })
    .await?;
    let run = completed(&f.ns, &name).await?;
    ensure!(run_phase(&run) == AnalysisPhase::Successful, "{:?}", run.status);
    let result = &run.status.as_ref().context("status")?.metric_results[0];
    ensure!((result.count, result.successful) == (2, 2), "{result:?}");
    ensure!(run.spec.args.contains(&argument("service", "web-canary")), "{:?}", run.spec.args);
    ensure!(run.spec.args.contains(&argument("hash", &rev2)), "the Latest hash is given: {:?}", run.spec.args);
    check_run_identity(&run, &f.ns.rollout(APP).await?, &rev2, Some(1))?;

    // The next steps: weight 50, then the pause.
    f.ns.wait_step(APP, 3, "Paused").await?;
    let state = f.ns.wait_traffic(&routing(), "weight 50", |s| s.weights == Some((50, 50))).await?;
    ensure!(state.canary_selects.as_deref() == Some(rev2.as_str()), "{state:?}");
    let names: Vec<String> = runs(&f.ns).await?.iter().map(|r| r.name_any()).collect();
    ensure!(names == [name], "one run for the one analysis step: {names:?}");
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_failed_step_analysis_aborts_and_traffic_is_back_within_settle_and_an_interval() -> Result<()> {
    let f = Fixture::healthy("ra-step-fail", &steps("gate"), "", BAD).await?;
    let watch = f.ns.watch_traffic(&routing()).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let (failed, back) = gate_fails(&f, &rev2).rolled_back(&f.ns).await?;
    // Timed by the controller's clock: from the failing measurement to each traffic change.
    let failed_at = failed_measurement(&failed)?.finished_at.context("the measurement has no end")?.0;
    let limit = SignedDuration::try_from(TEST_SETTLE + INTERVAL)?;
    for (what, changed) in [("the weights", back.weights_changed_at), ("the canary Service", back.canary_changed_at)] {
        let after = changed.with_context(|| format!("{what} carry no change time"))?.duration_since(failed_at);
        ensure!(after >= SignedDuration::ZERO && after <= limit, "{what} went back {after} after the failure");
    }
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn an_inconclusive_step_analysis_pauses_until_promoted() -> Result<()> {
    let f = Fixture::healthy("ra-step-inconclusive", &steps("gate"), "", INCONCLUSIVE).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let name = run_name(APP, &rev2, 2, Some(1));
    let run = completed(&f.ns, &name).await?;
    ensure!(run_phase(&run) == AnalysisPhase::Inconclusive, "{:?}", run.status);
    let paused =
        f.ns.wait_rollout(APP, "paused for the inconclusive run", |r| {
            let conditions = status(r).pause_conditions.unwrap_or_default();
            phase(r) == "Paused" && conditions.iter().any(|c| c.reason == "InconclusiveAnalysisRun")
        })
        .await?;
    ensure!(status(&paused).abort != Some(true) && status(&paused).current_step_index == Some(1), "{paused:?}");

    f.ns.rollouts_plugin(&["promote", APP]).await?;
    f.ns.wait_step(APP, 3, "Paused").await?;
    let names: Vec<String> = runs(&f.ns).await?.iter().map(|r| r.name_any()).collect();
    ensure!(names == [name], "promote moved on without analysing again: {names:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_retry_after_an_automatic_abort_starts_a_fresh_run() -> Result<()> {
    let f = Fixture::healthy("ra-retry", &steps("gate"), "", BAD).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let first = run_name(APP, &rev2, 2, Some(1));
    gate_fails(&f, &rev2).rolled_back(&f.ns).await?;

    f.prometheus.set(SUCCESS_RATE, GOOD).await?;
    f.ns.rollouts_plugin(&["retry", "rollout", APP]).await?;
    let retried = completed(&f.ns, &format!("{first}.1")).await?;
    ensure!(run_phase(&retried) == AnalysisPhase::Successful, "{:?}", retried.status);
    check_run_identity(&retried, &f.ns.rollout(APP).await?, &rev2, Some(1))?;
    f.ns.wait_step(APP, 3, "Paused").await?;
    let first_now = f.ns.api::<rollouts_controller::api::AnalysisRun>().get(&first).await?;
    ensure!(run_phase(&first_now) == AnalysisPhase::Failed, "the failed run is kept as it was");
    ensure!(runs(&f.ns).await?.len() == 2, "the failed run and the retry's");
    Ok(())
}
