//! Snapshots of what `get analysisrun` and `list analysisruns` print, from fixture runs at a
//! fixed time and without colour. Review changes with `cargo insta review`.

use k8s_openapi::jiff::Timestamp;
use kubectl_rollouts::render::{Style, render_analysis_run, render_analysis_runs};
use rollouts_controller::api::AnalysisRun;

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().expect("a valid time")
}

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
