//! Runs over a whole update: a background run that fails aborts it; a full promotion and a new
//! revision terminate the runs in flight (a new revision starts its own); a controller restarted
//! mid-run neither loses nor repeats a measurement or a run.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::rollouts::{phase, status};
use kube::ResourceExt;
use rollouts_controller::api::{AnalysisPhase, AnalysisRun};

use crate::fixture::{APP, BAD, FAILURE_CONDITION, Fixture, GOOD, INTERVAL, analysis_step, background, routing};
use crate::support::{
    Aborting, Failure, check_run_identity, completed, measurements, run_name, run_phase, runs, wait_run,
};

/// Weight 20, a long analysis (step 1), a pause; the background run from the start.
fn long_analysis() -> (String, String) {
    (format!("[{{setWeight: 20}}, {}, {{pause: {{}}}}]", analysis_step("long")), background(0))
}

/// Waits until run `name` is Running and has measured.
async fn measuring(f: &Fixture, name: &str) -> Result<AnalysisRun> {
    wait_run(&f.ns, name, "Running with a measurement", |run| {
        run_phase(run) == AnalysisPhase::Running && !measurements(run).is_empty()
    })
    .await
}

/// Waits until run `name` has been terminated and has ended.
async fn terminated(f: &Fixture, name: &str) -> Result<()> {
    let run = completed(&f.ns, name).await?;
    ensure!(run.spec.terminate, "{name} ended without being terminated: {:?}", run.status);
    let message = run.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    ensure!(message == "Run Terminated", "{name}: {message}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_failed_background_analysis_aborts_the_update() -> Result<()> {
    let steps = "[{setWeight: 20}, {pause: {}}, {setWeight: 40}, {pause: {}}]";
    let f = Fixture::healthy("ra-background-fail", steps, &background(2), BAD).await?;
    let watch = f.ns.watch_traffic(&routing()).await?;
    let rev2 = f.update("nginx:1.27").await?;
    f.ns.wait_step(APP, 1, "Paused").await?;
    ensure!(runs(&f.ns).await?.is_empty(), "no background run before its startingStep");

    f.ns.rollouts_plugin(&["promote", APP]).await?;
    let name = run_name(APP, &rev2, 2, None);
    f.ns.wait_rollout(APP, "the background run in the status", |r| {
        let canary = status(r).canary.unwrap_or_default();
        canary.current_background_analysis_run_status.is_some_and(|s| s.name == name && s.status == "Running")
    })
    .await?;
    let failure = Failure {
        metric: "success-rate",
        condition: FAILURE_CONDITION,
        failure_condition: true,
        failed: 2,
        failure_limit: 1,
    };
    let aborting = Aborting {
        rollout: APP,
        routing: routing(),
        stable: &f.rev1,
        canary: &rev2,
        step: None,
        failed_from: "Running",
        failure,
    };
    aborting.rolled_back(&f.ns).await?;
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn promote_full_terminates_the_runs_in_flight() -> Result<()> {
    let (steps, background) = long_analysis();
    let f = Fixture::healthy("ra-promote-full", &steps, &background, GOOD).await?;
    let watch = f.ns.watch_traffic(&routing()).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let (step, background) = (run_name(APP, &rev2, 2, Some(1)), run_name(APP, &rev2, 2, None));
    measuring(&f, &step).await?;
    measuring(&f, &background).await?;

    f.ns.rollouts_plugin(&["promote", APP, "--full"]).await?;
    f.ns.wait_rollout(APP, "fully promoted", |r| {
        phase(r) == "Healthy" && status(r).stable_rs.as_deref() == Some(rev2.as_str())
    })
    .await?;
    terminated(&f, &step).await?;
    terminated(&f, &background).await?;
    f.ns.wait_traffic(&routing(), "all traffic on the new revision", |s| s.all_on(&rev2)).await?;
    ensure!(runs(&f.ns).await?.len() == 2, "no run started after the promotion");
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_new_revision_terminates_the_old_runs_and_starts_its_own() -> Result<()> {
    let (steps, background) = long_analysis();
    let f = Fixture::healthy("ra-new-revision", &steps, &background, GOOD).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let old = [run_name(APP, &rev2, 2, Some(1)), run_name(APP, &rev2, 2, None)];
    for name in &old {
        measuring(&f, name).await?;
    }

    let rev3 = f.update("nginx:1.28").await?;
    for name in &old {
        terminated(&f, name).await?;
    }
    let rollout = f.ns.rollout(APP).await?;
    for (name, step) in [(run_name(APP, &rev3, 3, Some(1)), Some(1)), (run_name(APP, &rev3, 3, None), None)] {
        let run = measuring(&f, &name).await?;
        check_run_identity(&run, &rollout, &rev3, step)?;
    }
    ensure!(runs(&f.ns).await?.len() == 4, "two runs per revision");
    Ok(())
}

/// How close two measurements of one metric may be: one taken twice would be closer.
const SAME_MEASUREMENT: Duration = Duration::from_millis(1500);

/// Fails if two measurements of `run` started closer than an interval allows.
fn none_repeated(run: &AnalysisRun) -> Result<()> {
    let started: Vec<_> = measurements(run).iter().filter_map(|m| m.started_at.as_ref().map(|t| t.0)).collect();
    for pair in started.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        ensure!(gap.unsigned_abs() >= SAME_MEASUREMENT, "{}: measurements {gap} apart: {started:?}", run.name_any());
    }
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_controller_restart_mid_run_neither_loses_nor_repeats_anything() -> Result<()> {
    let steps = format!("[{{setWeight: 20}}, {}, {{pause: {{}}}}]", analysis_step("five"));
    let mut f = Fixture::healthy("ra-restart", &steps, &background(0), GOOD).await?;
    let rev2 = f.update("nginx:1.27").await?;
    let (step, background) = (run_name(APP, &rev2, 2, Some(1)), run_name(APP, &rev2, 2, None));
    let down = INTERVAL + Duration::from_secs(1);
    let count = |at_least: i32| {
        move |run: &AnalysisRun| {
            run.status.as_ref().and_then(|s| s.metric_results.first()).is_some_and(|r| r.count >= at_least)
        }
    };

    // Stopped after the first measurement, for longer than an interval: one falls due meanwhile.
    wait_run(&f.ns, &step, "a first measurement", count(1)).await?;
    f.stop().await?;
    tokio::time::sleep(down).await;
    f.start().await?;
    // Killed after the third, the same way.
    wait_run(&f.ns, &step, "a third measurement", count(3)).await?;
    f.crash();
    tokio::time::sleep(down).await;
    f.start().await?;

    let run = completed(&f.ns, &step).await?;
    ensure!(run_phase(&run) == AnalysisPhase::Successful, "{:?}", run.status);
    let result = &run.status.as_ref().context("status")?.metric_results[0];
    ensure!((result.count, result.successful, result.error) == (5, 5, 0), "{result:?}");
    ensure!(measurements(&run).len() == 5, "five measurements kept: {:?}", measurements(&run));
    none_repeated(&run)?;
    f.ns.wait_step(APP, 2, "Paused").await?;
    let background_run = measuring(&f, &background).await?;
    none_repeated(&background_run)?;
    let mut names: Vec<String> = runs(&f.ns).await?.iter().map(|r| r.name_any()).collect();
    names.sort();
    let mut wanted = vec![step, background];
    wanted.sort();
    ensure!(names == wanted, "one run per analysis: {names:?}");
    Ok(())
}
