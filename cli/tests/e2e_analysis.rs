//! `get analysisrun`, `list analysisruns` and `terminate analysisrun` against the test cluster.
//! No controller runs: each test writes the runs' status itself, merge-patched on the object as
//! upstream's controller writes it.

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::TestNamespace;
use kube::api::{Patch, PatchParams};
use rollouts_controller::api::AnalysisRun;
use serde_json::{Value, json};
use support::{Plugin, assert_line};
use tokio::io::AsyncReadExt;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A run of two metrics: a Prometheus success rate and a web error rate.
fn run_yaml(name: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: {name}}}
spec:
  metrics:
  - name: success-rate
    interval: 10s
    count: 3
    successCondition: result[0] >= 0.95
    provider:
      prometheus: {{address: "http://prometheus.monitoring:9090", query: "sum(rate(requests_ok[1m])) / sum(rate(requests[1m]))"}}
  - name: error-rate
    failureCondition: result[0] > 0.05
    provider:
      web: {{url: "http://metrics.shop/error-rate"}}
"#
    )
}

fn measurement(phase: &str, value: &str, at: &str) -> Value {
    json!({"phase": phase, "value": value, "startedAt": at, "finishedAt": at})
}

/// The status of a run whose success rate passed three times and whose error rate failed.
fn failed_status() -> Value {
    let passed = |at| measurement("Successful", "[0.99]", at);
    json!({
        "phase": "Failed",
        "message": "Metric \"error-rate\" assessed Failed due to failed (1) > failureLimit (0)",
        "startedAt": "2026-03-01T11:58:00Z",
        "metricResults": [
            {"name": "success-rate", "phase": "Successful", "count": 3, "successful": 3,
             "measurements": [passed("2026-03-01T11:58:00Z"), passed("2026-03-01T11:58:10Z"),
                              passed("2026-03-01T11:58:20Z")]},
            {"name": "error-rate", "phase": "Failed", "count": 1, "failed": 1,
             "message": "failed (1) > failureLimit (0)",
             "measurements": [measurement("Failed", "[0.07]", "2026-03-01T11:58:00Z")]}
        ]
    })
}

/// Writes `status` on the run the way upstream does: a merge patch of the object itself.
async fn write_status(ns: &TestNamespace, name: &str, status: Value) -> Result<()> {
    let api = ns.api::<AnalysisRun>();
    let patch = json!({"status": status});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_run_is_shown_listed_and_terminated() -> Result<()> {
    let ns = TestNamespace::new("cli-analysis").await?;
    let plugin = Plugin::admin(&ns);
    ns.apply(&run_yaml("web-1")).await?;
    write_status(&ns, "web-1", failed_status()).await?;

    let get = plugin.ok(&["get", "analysisrun", "web-1"]).await?;
    assert_line(&get, "Status:          Failed");
    assert_line(&get, "Message:         Metric \"error-rate\" assessed Failed due to failed (1) > failureLimit (0)");
    assert_line(&get, "Metrics:         1/2 successful");
    assert_line(&get, "Metric:          success-rate");
    assert_line(&get, "  Status:        Successful");
    assert_line(&get, "  Provider:      prometheus");
    assert_line(&get, "  Succeeds if:   result[0] >= 0.95");
    assert_line(&get, "  Counts:        3 successful, 0 failed, 0 inconclusive, 0 error, 0 consecutive errors");
    let passed = get.lines().filter(|l| l.trim_start().starts_with("Successful  [0.99]  ")).count();
    assert_eq!(passed, 3, "three measurements of 0.99:\n{get}");
    assert_line(&get, "Metric:          error-rate");
    assert_line(&get, "  Status:        Failed");
    assert_line(&get, "  Message:       failed (1) > failureLimit (0)");
    assert_line(&get, "  Fails if:      result[0] > 0.05");
    assert!(get.lines().any(|l| l.trim_start().starts_with("Failed  [0.07]  ")), "{get}");
    // `ar` is kubectl's short name; a completed run's watch draws it once and ends.
    let watched = plugin.ok(&["get", "ar", "web-1", "--watch", "--timeout", "30s"]).await?;
    assert_eq!(watched.matches("Name:").count(), 1, "{watched}");
    assert_line(&watched, "Status:          Failed");

    let list = plugin.ok(&["list", "analysisruns"]).await?;
    let mut lines = list.lines();
    assert_eq!(
        lines.next().map(str::split_whitespace).map(Iterator::collect::<Vec<_>>),
        Some(vec!["NAME", "STATUS", "METRICS", "AGE", "MESSAGE"])
    );
    let row = lines.next().context("a row for web-1")?;
    assert!(row.starts_with("web-1  Failed  1/2 successful  "), "{list}");
    assert!(row.ends_with("Metric \"error-rate\" assessed Failed due to failed (1) > fai…"), "{list}");

    assert_eq!(plugin.ok(&["terminate", "analysisrun", "web-1"]).await?, "analysisrun 'web-1' terminated\n");
    assert!(ns.api::<AnalysisRun>().get("web-1").await?.spec.terminate, "spec.terminate is set");

    let namespace = &ns.name;
    let stderr = plugin.fails(&["get", "analysisrun", "nope"]).await?;
    assert_eq!(stderr, format!("error: analysisrun \"nope\" not found in namespace \"{namespace}\"\n"));
    let stderr = plugin.fails(&["terminate", "ar", "wbe-1"]).await?;
    assert_eq!(
        stderr,
        format!("error: analysisrun \"wbe-1\" not found in namespace \"{namespace}\"; did you mean \"web-1\"?\n")
    );
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn get_watch_follows_a_run_until_it_completes() -> Result<()> {
    let ns = TestNamespace::new("cli-analysis-watch").await?;
    let plugin = Plugin::admin(&ns);
    ns.apply(&run_yaml("web-2")).await?;
    let running = json!({
        "phase": "Running",
        "metricResults": [{"name": "success-rate", "phase": "Running", "count": 1, "successful": 1,
                           "measurements": [measurement("Successful", "[0.98]", "2026-03-01T11:58:00Z")]}]
    });
    write_status(&ns, "web-2", running).await?;
    let mut watching = plugin.command(&["get", "analysisrun", "web-2", "--watch", "--timeout", "60s"]).spawn()?;
    let mut stdout = watching.stdout.take().context("stdout is piped")?;

    // Once the running state is drawn, the run completes; the watch draws that and ends itself.
    let mut watched = String::new();
    tokio::time::timeout(TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        while !watched.contains("Status:          Running") {
            let read = stdout.read(&mut chunk).await?;
            ensure!(read > 0, "get --watch ended before drawing the running run:\n{watched}");
            watched.push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
        Ok(())
    })
    .await
    .context("get --watch never drew the running run")??;
    write_status(&ns, "web-2", failed_status()).await?;
    tokio::time::timeout(TIMEOUT, stdout.read_to_string(&mut watched)).await.context("the watch didn't end")??;
    let ended = watching.wait_with_output().await?;
    assert!(ended.status.success(), "get --watch failed: {}", String::from_utf8_lossy(&ended.stderr));
    // Through a pipe, each new state follows the last after a blank line.
    let frames: Vec<&str> = watched.split("\n\nName:").collect();
    assert_eq!(frames.len(), 2, "{watched}");
    assert!(frames[0].contains("Metrics:         0/2 successful"), "{}", frames[0]);
    assert!(frames[1].contains("Status:          Failed") && frames[1].contains("Metrics:         1/2 successful"));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_run_is_created_from_nested_templates_or_refused_in_one_line() -> Result<()> {
    let ns = TestNamespace::new("cli-ar-create").await?;
    ns.apply(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: checks}
spec:
  templates: [{templateName: rate}]
  metrics:
  - name: smoke
    provider: {web: {url: "http://{{args.service}}/health"}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: rate}
spec:
  args: [{name: service}, {name: window, value: 1m}]
  metrics:
  - name: success-rate
    successCondition: result[0] >= 0.99
    provider: {prometheus: {address: "http://prometheus:9090", query: "rate(ok{service=\"{{args.service}}\"}[{{args.window}}])"}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: broken}
spec:
  templates: [{templateName: gone}]
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: typo}
spec:
  metrics:
  - name: rate
    successCondition: result[0] >= 0.99 )
    provider: {web: {url: "http://web/health"}}
"#,
    )
    .await?;
    let plugin = Plugin::admin(&ns);
    let out = plugin.ok(&["create", "analysisrun", "--from", "checks", "--name", "run-1", "-a", "service=web"]).await?;
    assert_line(&out, "analysisrun.argoproj.io/run-1 created");
    let run: AnalysisRun = ns.api().get("run-1").await?;
    let metrics: Vec<&str> = run.spec.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(metrics, ["smoke", "success-rate"]);
    let args: Vec<(&str, Option<&str>)> = run.spec.args.iter().map(|a| (a.name.as_str(), a.value.as_deref())).collect();
    assert_eq!(args, [("service", Some("web")), ("window", Some("1m"))]);

    for (args, expected) in [
        (vec!["--from", "nope"], "error: AnalysisTemplate 'nope' not found"),
        (vec!["--from-global", "checks"], "error: ClusterAnalysisTemplate 'checks' not found"),
        (vec!["--from", "broken"], "error: AnalysisTemplate 'gone' not found"),
        (vec!["--from", "checks"], "error: argument 'service' needs a value"),
        (
            vec!["--from", "typo"],
            "error: metrics[0] (rate): successCondition \"result[0] >= 0.99 )\": column 19: unexpected token \")\"",
        ),
        (
            vec!["--from", "checks", "-a", "svc=web"],
            "error: argument 'svc' is not declared by the templates (they declare: service, window)",
        ),
    ] {
        let stderr = plugin.fails(&[&["create", "analysisrun"], args.as_slice()].concat()).await?;
        assert_eq!(stderr.trim_end(), expected);
    }
    let runs: Vec<AnalysisRun> = ns.api().list(&Default::default()).await?.items;
    assert_eq!(runs.len(), 1, "nothing was created by the refused commands");
    Ok(())
}
