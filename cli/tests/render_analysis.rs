//! Snapshots of what `get analysisrun` and `list analysisruns` print, and of a rollout's runs in
//! `get rollout` and `status`, from fixtures at a fixed time and without colour. Review changes
//! with `cargo insta review`.

mod fixtures;

use fixtures::{Fixture, Revision, fixture, now};
use kubectl_rollouts::family::{Family, Visible};
use kubectl_rollouts::phase::client_phase;
use kubectl_rollouts::render::{Style, render_analysis_run, render_analysis_runs, render_get};
use rollouts_controller::api::AnalysisRun;

fn run(yaml: &str) -> AnalysisRun {
    serde_saphyr::from_str(yaml).expect("the AnalysisRun fixture parses")
}

const SPEC: &str = r#"
spec:
  metrics:
  - name: success-rate
    interval: 30s
    count: 3
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: |
          sum(rate(http_requests_total{app="web",code!~"5.."}[1m]))
            / sum(rate(http_requests_total{app="web"}[1m]))
  - name: error-rate
    successCondition: result.rate < 0.01
    failureCondition: result.rate >= 0.05
    provider:
      web: {url: "http://metrics.shop/error-rate", jsonPath: "{$.data}"}
  - name: latency
    interval: 10s
    successCondition: result[0] < 0.3
    provider:
      prometheus: {query: "histogram_quantile(0.99, rate(latency_bucket[1m]))"}
  dryRun: [{metricName: latency}]
"#;

/// A run that ended Failed: one metric passed 3 times, one failed, a dry-run one errored.
fn failed() -> AnalysisRun {
    run(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: web-7c9d8f6b5-2, namespace: shop, creationTimestamp: "2026-03-01T11:58:00Z"}}
{SPEC}
status:
  phase: Failed
  message: 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
  startedAt: "2026-03-01T11:58:00Z"
  completedAt: "2026-03-01T11:59:30Z"
  runSummary: {{count: 2, successful: 1, failed: 1}}
  dryRunSummary: {{count: 1, error: 1}}
  metricResults:
  - name: success-rate
    phase: Successful
    count: 3
    successful: 3
    measurements:
    - {{phase: Successful, value: "[0.99]", startedAt: "2026-03-01T11:58:00Z", finishedAt: "2026-03-01T11:58:00Z"}}
    - {{phase: Successful, value: "[0.99]", startedAt: "2026-03-01T11:58:30Z", finishedAt: "2026-03-01T11:58:30Z"}}
    - {{phase: Successful, value: "[0.99]", startedAt: "2026-03-01T11:59:00Z", finishedAt: "2026-03-01T11:59:00Z"}}
  - name: error-rate
    phase: Failed
    message: 'failed (1) > failureLimit (0)'
    count: 1
    failed: 1
    measurements:
    - {{phase: Failed, value: '{{"rate":0.07}}', startedAt: "2026-03-01T11:58:00Z", finishedAt: "2026-03-01T11:58:01Z"}}
  - name: latency
    phase: Error
    dryRun: true
    message: 'Metric "latency" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)'
    error: 5
    consecutiveError: 5
    measurements:
    - phase: Error
      message: 'Post "http://prometheus:9090/api/v1/query": dial tcp: lookup prometheus: no such host'
      startedAt: "2026-03-01T11:59:20Z"
      finishedAt: "2026-03-01T11:59:20Z"
"#
    ))
}

/// A run still measuring: 7 measurements kept, one in flight, one metric not started, and a
/// terminate the controller hasn't acted on yet.
fn running() -> AnalysisRun {
    let measurements: String = (0..7)
        .map(|i| {
            let at = format!("2026-03-01T11:5{i}:00Z");
            format!("    - {{phase: Successful, value: \"[0.9{i}]\", startedAt: \"{at}\", finishedAt: \"{at}\"}}\n")
        })
        .collect();
    run(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: web-7c9d8f6b5-3, namespace: shop, creationTimestamp: "2026-03-01T11:50:00Z"}}
{SPEC}
  terminate: true
status:
  phase: Running
  startedAt: "2026-03-01T11:50:00Z"
  metricResults:
  - name: success-rate
    phase: Running
    count: 7
    successful: 7
    consecutiveSuccess: 7
    measurements:
{measurements}    - {{phase: Running, startedAt: "2026-03-01T11:59:55Z"}}
"#
    ))
}

/// Just created: the controller hasn't written a status yet.
fn new() -> AnalysisRun {
    run(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: web-7c9d8f6b5-4, namespace: shop, creationTimestamp: "2026-03-01T11:59:58Z"}}
{SPEC}
"#
    ))
}

#[test]
fn get_failed() {
    insta::assert_snapshot!(render_analysis_run(&failed(), now(), Style::PLAIN));
}

#[test]
fn get_running_and_terminating() {
    insta::assert_snapshot!(render_analysis_run(&running(), now(), Style::PLAIN));
}

#[test]
fn get_before_the_first_reconcile() {
    insta::assert_snapshot!(render_analysis_run(&new(), now(), Style::PLAIN));
}

#[test]
fn get_with_icons() {
    let icons = Style { color: false, icons: true };
    insta::assert_snapshot!(render_analysis_run(&failed(), now(), icons));
}

#[test]
fn list() {
    insta::assert_snapshot!(render_analysis_runs(&[failed(), running(), new()], false, now(), Style::PLAIN));
}

#[test]
fn list_all_namespaces() {
    let mut other = failed();
    other.metadata.namespace = Some("payments".into());
    other.metadata.name = Some("api-5f6d7c8b9-1".into());
    insta::assert_snapshot!(render_analysis_runs(&[other, running()], true, now(), Style::PLAIN));
}

// A rollout's runs, in `get rollout`.

/// A run the rollout `web` started for revision `revision` (template `hash`): a step run of
/// step `step`, or (`None`) the background run. `rest` is its spec and status.
fn rollout_run(hash: &str, revision: u64, step: Option<u32>, created: &str, rest: &str) -> AnalysisRun {
    let (name, labels) = match step {
        Some(index) => {
            (format!("web-{hash}-{revision}-{index}"), format!("rollout-type: Step, step-index: \"{index}\""))
        }
        None => (format!("web-{hash}-{revision}"), "rollout-type: Background".to_string()),
    };
    run(&format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: {name}
  namespace: shop
  creationTimestamp: "{created}"
  labels: {{app: web, rollouts-pod-template-hash: {hash}, {labels}}}
  annotations: {{rollout.argoproj.io/revision: "{revision}"}}
  ownerReferences: [{{apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: web, uid: uid-web, controller: true}}]
{rest}"#
    ))
}

const STEP_SPEC: &str = r#"
spec:
  metrics:
  - {name: success-rate, interval: 30s, count: 3, successCondition: "result[0] >= 0.95",
     provider: {prometheus: {query: "sum(rate(ok[1m])) / sum(rate(all[1m]))"}}}
"#;

const BACKGROUND_SPEC: &str = r#"
spec:
  metrics:
  - {name: error-rate, interval: 1m, failureCondition: "result.rate >= 0.05",
     provider: {web: {url: "http://metrics.shop/error-rate"}}}
  - {name: latency, interval: 1m, successCondition: "result[0] < 0.3",
     provider: {prometheus: {query: "histogram_quantile(0.99, rate(latency_bucket[1m]))"}}}
  dryRun: [{metricName: latency}]
"#;

/// A step run that measured `successes` times and ended (or is) in `phase`.
fn step_run(hash: &str, revision: u64, created: &str, phase: &str, successes: usize) -> AnalysisRun {
    let measurements =
        format!("    - {{phase: Successful, value: \"[0.99]\", finishedAt: \"{created}\"}}\n").repeat(successes);
    let status = format!(
        "status:\n  phase: {phase}\n  metricResults:\n  - name: success-rate\n    phase: {phase}\n    \
         successful: {successes}\n    measurements:\n{measurements}"
    );
    rollout_run(hash, revision, Some(1), created, &format!("{STEP_SPEC}{status}"))
}

/// The rollout `web` at its analysis step (index 1 of 4 steps) with revision 4, a background run going
/// since the update. Revision 3 was aborted by its background run; revision 1's ReplicaSet is
/// gone but one of its runs is kept.
fn analysing(status: &str, current_step_run: AnalysisRun) -> Fixture {
    let rollout = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: shop, uid: uid-web, generation: 4, creationTimestamp: "2026-03-01T10:00:00Z"}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: web}}}}
  template: {{metadata: {{labels: {{app: web}}}}, spec: {{containers: [{{name: web, image: "nginx:1.28"}}]}}}}
  strategy:
    canary:
      analysis: {{templates: [{{templateName: error-rate}}]}}
      steps: [{{setWeight: 25}}, {{analysis: {{templates: [{{templateName: success-rate}}]}}}}, {{setWeight: 50}}, {{pause: {{}}}}]
status:
  observedGeneration: "4"
  currentPodHash: 7c9d8f6b5
  stableRS: 5f6d7c8b9
  currentStepIndex: 1
  replicas: 4
  updatedReplicas: 1
  readyReplicas: 4
  availableReplicas: 4
{status}"#
    );
    let ready =
        |hash, revision, image, desired, created| Revision { hash, revision, image, desired, ready: desired, created };
    let mut fixture = fixture(
        &rollout,
        &[
            ready("7c9d8f6b5", 4, "nginx:1.28", 1, "2026-03-01T11:55:00Z"),
            ready("6a7b8c9d0", 3, "nginx:1.27", 0, "2026-03-01T11:30:00Z"),
            ready("5f6d7c8b9", 2, "nginx:1.26", 3, "2026-03-01T11:00:00Z"),
        ],
    );
    let background = |hash, revision, created, status: &str| {
        rollout_run(hash, revision, None, created, &format!("{BACKGROUND_SPEC}{status}"))
    };
    let failed_background = background(
        "6a7b8c9d0",
        3,
        "2026-03-01T11:30:00Z",
        r#"status:
  phase: Failed
  message: 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
  metricResults:
  - name: error-rate
    phase: Failed
    message: 'failed (1) > failureLimit (0)'
    successful: 2
    failed: 1
    measurements:
    - {phase: Successful, value: '{"rate":0.01}', finishedAt: "2026-03-01T11:31:00Z"}
    - {phase: Successful, value: '{"rate":0.02}', finishedAt: "2026-03-01T11:32:00Z"}
    - {phase: Failed, value: '{"rate":0.07}', finishedAt: "2026-03-01T11:33:00Z"}
  - name: latency
    phase: Error
    dryRun: true
    message: 'consecutiveErrors (5) > consecutiveErrorLimit (4)'
    error: 5
    measurements:
    - {phase: Error, message: 'Post "http://prometheus:9090/api/v1/query": dial tcp: lookup prometheus: no such host'}
"#,
    );
    let running_background = background(
        "7c9d8f6b5",
        4,
        "2026-03-01T11:55:00Z",
        "status:\n  phase: Running\n  metricResults:\n  - {name: error-rate, phase: Running, successful: 4}\n",
    );
    let mut foreign = step_run("9d8e7f6a5", 1, "2026-03-01T09:00:00Z", "Successful", 3);
    foreign.metadata.owner_references.as_mut().expect("the fixture has an owner")[0].uid = "uid-api".into();
    fixture.analysis_runs = vec![
        foreign,
        step_run("4b5c6d7f8", 1, "2026-03-01T10:00:00Z", "Successful", 3),
        step_run("6a7b8c9d0", 3, "2026-03-01T11:30:30Z", "Successful", 3),
        failed_background,
        running_background,
        current_step_run,
    ];
    fixture
}

/// Waiting on the step run, which has 2 of its 3 measurements.
fn waiting_on_analysis() -> Fixture {
    analysing(
        r#"  phase: Progressing
  message: "step 2/4: analysis run web-7c9d8f6b5-4-1: Running, 2 of 3 measurements"
  canary:
    currentStepAnalysisRunStatus: {name: web-7c9d8f6b5-4-1, status: Running}
    currentBackgroundAnalysisRunStatus: {name: web-7c9d8f6b5-4, status: Running}
"#,
        step_run("7c9d8f6b5", 4, "2026-03-01T11:58:00Z", "Running", 2),
    )
}

/// Paused by the controller: the step run was Inconclusive.
fn inconclusive() -> Fixture {
    let run = rollout_run(
        "7c9d8f6b5",
        4,
        Some(1),
        "2026-03-01T11:58:00Z",
        &format!(
            r#"{STEP_SPEC}status:
  phase: Inconclusive
  message: 'Metric "success-rate" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)'
  metricResults:
  - name: success-rate
    phase: Inconclusive
    message: 'inconclusive (1) > inconclusiveLimit (0)'
    successful: 2
    inconclusive: 1
    measurements:
    - {{phase: Successful, value: "[0.97]", finishedAt: "2026-03-01T11:58:00Z"}}
    - {{phase: Successful, value: "[0.96]", finishedAt: "2026-03-01T11:58:30Z"}}
    - {{phase: Inconclusive, value: "[0.93]", finishedAt: "2026-03-01T11:59:00Z"}}
"#
        ),
    );
    analysing(
        r#"  phase: Paused
  message: 'InconclusiveAnalysisRun: metric "success-rate" inconclusive: [0.93] (analysis run web-7c9d8f6b5-4-1); promote to go on, abort to roll back'
  controllerPause: true
  pauseConditions: [{reason: InconclusiveAnalysisRun, startTime: "2026-03-01T11:59:00Z"}]
  canary:
    currentStepAnalysisRunStatus: {name: web-7c9d8f6b5-4-1, status: Inconclusive}
    currentBackgroundAnalysisRunStatus: {name: web-7c9d8f6b5-4, status: Running}
"#,
        run,
    )
}

#[test]
fn get_rollout_waiting_on_analysis() {
    insta::assert_snapshot!(waiting_on_analysis().get());
}

#[test]
fn get_rollout_paused_by_an_inconclusive_run() {
    insta::assert_snapshot!(inconclusive().get());
}

#[test]
fn get_rollout_with_analysis_and_icons() {
    let fixture = inconclusive();
    let icons = Style { color: false, icons: true };
    insta::assert_snapshot!(render_get(&fixture.rollout, &fixture.family(), now(), icons));
}

#[test]
fn get_rollout_says_when_runs_may_not_be_listed() {
    let fixture = inconclusive();
    let family = Family { analysis_runs: Visible::Forbidden, ..fixture.family() };
    let text = render_get(&fixture.rollout, &family, now(), Style::PLAIN);
    assert!(!text.contains("AnalysisRun  "), "no run rows in:\n{text}");
    assert!(
        text.ends_with("(analysis runs not shown: they need permission to list analysisruns in namespace \"shop\")\n")
    );
}

#[test]
fn status_says_what_the_rollout_waits_for() {
    let lines: Vec<String> =
        [waiting_on_analysis(), inconclusive()].iter().map(|f| client_phase(&f.rollout, None).to_string()).collect();
    assert_eq!(
        lines,
        [
            "Progressing - step 2/4: analysis run web-7c9d8f6b5-4-1: Running, 2 of 3 measurements",
            "Paused - InconclusiveAnalysisRun: metric \"success-rate\" inconclusive: [0.93] (analysis run \
             web-7c9d8f6b5-4-1); promote to go on, abort to roll back",
        ]
    );
}
