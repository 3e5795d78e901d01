//! AnalysisRuns measured by the controller against a real Prometheus (one per test, fed exact
//! samples), a local web server, and real Jobs finished by kwok.

use std::time::Duration;

use anyhow::Result;
use e2e::process::http_get;
use e2e::prometheus::Prometheus;
use e2e::web::{Reply, WebServer};
use e2e::{TestNamespace, kubectl, read_repo_file};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use rollouts_controller::api::{AnalysisPhase, AnalysisRun};

const TIMEOUT: Duration = Duration::from_secs(90);

/// An AnalysisRun of one Prometheus metric with the given extra fields.
fn prometheus_run(name: &str, address: &str, query: &str, fields: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: {name}}}
spec:
  metrics:
  - name: success-rate
    {fields}
    provider:
      prometheus:
        address: {address}
        query: '{query}'
"#
    )
}

async fn completed(ns: &TestNamespace, name: &str) -> Result<AnalysisRun> {
    ns.wait_for::<AnalysisRun>(name, &format!("{name} to complete"), TIMEOUT, |run| {
        run.status.as_ref().is_some_and(|s| s.phase.completed())
    })
    .await
}

fn phase(run: &AnalysisRun) -> AnalysisPhase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn message(run: &AnalysisRun) -> String {
    run.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default()
}

#[tokio::test]
async fn prometheus_runs_succeed_fail_and_go_inconclusive_on_what_the_canary_measures() -> Result<()> {
    let ns = TestNamespace::new("analysis-prometheus").await?;
    let prometheus = Prometheus::start().await?;
    prometheus.set(r#"success_rate{service="good"}"#, 0.999).await?;
    prometheus.set(r#"success_rate{service="bad"}"#, 0.82).await?;
    prometheus.set(r#"success_rate{service="meh"}"#, 0.95).await?;
    let controller = ns.start_controller().await?;
    let url = prometheus.url();
    let condition = "successCondition: len(result) > 0 && result[0] >= 0.99";
    ns.apply(&prometheus_run(
        "good",
        &url,
        r#"success_rate{service="good"}"#,
        &format!("interval: 1s\n    count: 2\n    {condition}"),
    ))
    .await?;
    ns.apply(&prometheus_run(
        "bad",
        &url,
        r#"success_rate{service="bad"}"#,
        &format!("interval: 1s\n    count: 3\n    failureLimit: 1\n    {condition}"),
    ))
    .await?;
    ns.apply(&prometheus_run(
        "meh",
        &url,
        r#"success_rate{service="meh"}"#,
        &format!("{condition}\n    failureCondition: result[0] < 0.9"),
    ))
    .await?;

    let good = completed(&ns, "good").await?;
    assert_eq!(phase(&good), AnalysisPhase::Successful, "{good:?}");
    let result = &good.status.as_ref().unwrap().metric_results[0];
    assert_eq!((result.count, result.successful), (2, 2));
    // No status subresource: every write bumps the generation. Created, then one status write
    // per measurement.
    assert_eq!(good.metadata.generation, Some(3), "one status write per measurement");
    assert_eq!(result.measurements[0].value.as_deref(), Some("[0.999]"));
    assert_eq!(result.metadata["ResolvedPrometheusQuery"], r#"success_rate{service="good"}"#);

    let bad = completed(&ns, "bad").await?;
    assert_eq!(phase(&bad), AnalysisPhase::Failed);
    assert_eq!(
        message(&bad),
        "Metric \"success-rate\" assessed Failed due to failed (2) > failureLimit (1): value [0.82] does not satisfy successCondition \"len(result) > 0 && result[0] >= 0.99\""
    );
    assert_eq!(bad.status.as_ref().unwrap().metric_results[0].count, 2, "it stops at the second failure");

    let meh = completed(&ns, "meh").await?;
    assert_eq!(phase(&meh), AnalysisPhase::Inconclusive, "{}", message(&meh));

    // Events say what completed, on the run; the metrics carry upstream's names.
    let wanted = [
        ("bad", "MetricFailed", "Warning"),
        ("bad", "AnalysisRunFailed", "Warning"),
        ("good", "AnalysisRunSuccessful", "Normal"),
    ];
    e2e::poll_until(TIMEOUT, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await?.items;
        let seen = |(name, reason, kind): &(&str, &str, &str)| {
            events.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(*name)
                    && e.reason.as_deref() == Some(*reason)
                    && e.type_.as_deref() == Some(*kind)
            })
        };
        Ok(wanted.iter().all(seen).then_some(()))
    })
    .await?;
    let (_, metrics) = http_get(controller.admin, "/metrics").await?;
    let ns_label = format!("namespace=\"{}\"", ns.name);
    let series = |prefix: &str, labels: &[&str]| {
        metrics.lines().any(|line| {
            line.starts_with(prefix)
                && line.contains(&ns_label)
                && labels.iter().all(|l| line.contains(l))
                && line.ends_with(" 1")
        })
    };
    assert!(series("analysis_run_info{", &["name=\"bad\"", "phase=\"Failed\""]), "{metrics}");
    assert!(series(
        "analysis_run_metric_phase{",
        &["name=\"good\"", "metric=\"success-rate\"", "type=\"prometheus\"", "phase=\"Successful\""]
    ));
    assert!(metrics.contains("rollouts_controller_analysis_measurement_lateness_seconds_count"));
    Ok(())
}

#[tokio::test]
async fn a_run_keeps_going_through_a_prometheus_outage_and_errors_after_too_many() -> Result<()> {
    let ns = TestNamespace::new("analysis-outage").await?;
    let mut prometheus = Prometheus::start().await?;
    prometheus.set("success_rate", 1.0).await?;
    let _controller = ns.start_controller().await?;
    // A Prometheus that never answers (nothing listens on the port): with the default
    // consecutiveErrorLimit (4), the fifth error in a row ends the run in Error, 10 s apart.
    let nowhere = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?);
    ns.apply(&prometheus_run("down", &nowhere, "success_rate", "successCondition: result[0] >= 0.99")).await?;
    let fields = "interval: 2s\n    count: 3\n    successCondition: result[0] >= 0.99";
    ns.apply(&prometheus_run("outage", &prometheus.url(), "success_rate", fields)).await?;
    ns.wait_for::<AnalysisRun>("outage", "a first measurement", TIMEOUT, |run| {
        run.status.as_ref().is_some_and(|s| s.metric_results.first().is_some_and(|r| r.successful >= 1))
    })
    .await?;
    prometheus.stop().await;
    let erred = ns
        .wait_for::<AnalysisRun>("outage", "an error measurement", TIMEOUT, |run| {
            run.status.as_ref().is_some_and(|s| s.metric_results[0].consecutive_error >= 1)
        })
        .await?;
    let last = erred.status.as_ref().unwrap().metric_results[0].measurements.last().cloned().unwrap();
    assert_eq!(last.phase, AnalysisPhase::Error);
    assert!(last.message.as_deref().unwrap_or_default().contains("onnection refused"), "{last:?}");
    assert_eq!(phase(&erred), AnalysisPhase::Running);
    prometheus.restart().await?;
    prometheus.set("success_rate", 1.0).await?;
    let done = completed(&ns, "outage").await?;
    assert_eq!(phase(&done), AnalysisPhase::Successful, "{}", message(&done));
    let result = &done.status.as_ref().unwrap().metric_results[0];
    assert_eq!(result.count, 3, "errors don't use up the count");
    assert!(result.error >= 1 && result.consecutive_error == 0);

    let down = completed(&ns, "down").await?;
    assert_eq!(phase(&down), AnalysisPhase::Error);
    assert!(message(&down).contains("consecutiveErrors (5) > consecutiveErrorLimit (4)"), "{}", message(&down));
    let result = &down.status.as_ref().unwrap().metric_results[0];
    assert_eq!((result.error, result.count), (5, 0));
    let times: Vec<_> = result.measurements.iter().filter_map(|m| m.started_at.as_ref().map(|t| t.0)).collect();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).as_secs_f64();
        assert!((10.0..11.0).contains(&gap), "errors are retried 10 s apart: {gap} s");
    }
    Ok(())
}

#[tokio::test]
async fn no_data_is_said_so_and_guards_decide_it() -> Result<()> {
    let ns = TestNamespace::new("analysis-nodata").await?;
    let prometheus = Prometheus::start().await?;
    let _controller = ns.start_controller().await?;
    let url = prometheus.url();
    ns.apply(&prometheus_run(
        "bare",
        &url,
        "absent_series",
        "consecutiveErrorLimit: 0\n    successCondition: result[0] >= 0.99",
    ))
    .await?;
    ns.apply(&prometheus_run(
        "guarded",
        &url,
        "absent_series",
        "successCondition: len(result) > 0 && result[0] >= 0.99",
    ))
    .await?;
    ns.apply(&prometheus_run(
        "lenient",
        &url,
        "absent_series",
        "successCondition: len(result) == 0 || result[0] >= 0.99",
    ))
    .await?;
    let bare = completed(&ns, "bare").await?;
    assert_eq!(phase(&bare), AnalysisPhase::Error);
    assert!(message(&bare).contains("no data: the provider returned []"), "{}", message(&bare));
    assert_eq!(phase(&completed(&ns, "guarded").await?), AnalysisPhase::Failed);
    assert_eq!(phase(&completed(&ns, "lenient").await?), AnalysisPhase::Successful);
    Ok(())
}

#[tokio::test]
async fn terminate_dry_run_retention_and_ttl() -> Result<()> {
    let ns = TestNamespace::new("analysis-lifecycle").await?;
    let prometheus = Prometheus::start().await?;
    prometheus.set("success_rate", 0.5).await?;
    let _controller = ns.start_controller().await?;
    let yaml = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: background}}
spec:
  dryRun: [{{metricName: shadow}}]
  measurementRetention: [{{metricName: steady, limit: 2}}]
  ttlStrategy: {{secondsAfterCompletion: 2}}
  metrics:
  - name: steady
    interval: 1s
    successCondition: result[0] >= 0.1
    provider: {{prometheus: {{address: "{url}", query: success_rate}}}}
  - name: shadow
    interval: 1s
    successCondition: result[0] >= 0.99
    provider: {{prometheus: {{address: "{url}", query: success_rate}}}}
"#,
        url = prometheus.url()
    );
    ns.apply(&yaml).await?;
    let running = ns
        .wait_for::<AnalysisRun>("background", "three measurements of steady", TIMEOUT, |run| {
            run.status.as_ref().is_some_and(|s| s.metric_results.iter().any(|r| r.name == "steady" && r.count >= 3))
        })
        .await?;
    let status = running.status.as_ref().unwrap();
    assert_eq!(status.phase, AnalysisPhase::Running, "a failing dry-run metric doesn't fail the run");
    let shadow = status.metric_results.iter().find(|r| r.name == "shadow").unwrap();
    assert!(shadow.dry_run && shadow.phase == AnalysisPhase::Failed, "{shadow:?}");
    let steady = status.metric_results.iter().find(|r| r.name == "steady").unwrap();
    assert!(steady.measurements.len() <= 2, "retention keeps 2: {steady:?}");

    ns.api::<AnalysisRun>()
        .patch("background", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"terminate": true}})))
        .await?;
    let done = completed(&ns, "background").await?;
    assert_eq!(phase(&done), AnalysisPhase::Successful, "{}", message(&done));
    assert_eq!(message(&done), "Run Terminated");
    // ttlStrategy: gone two seconds after completion.
    e2e::poll_until(TIMEOUT, || async {
        Ok(ns.api::<AnalysisRun>().get_opt("background").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn web_metrics_read_json_time_out_and_never_show_secrets() -> Result<()> {
    let ns = TestNamespace::new("analysis-web").await?;
    let server = WebServer::start(|request| match request.path.as_str() {
        "/health" => Reply::ok(r#"{"data": {"ok": true, "rate": 0.97}}"#),
        "/text" => Reply::ok("OK"),
        "/slow" => Reply { delay: Duration::from_secs(3), ..Reply::ok("{}") },
        "/broken" => Reply { status: 500, ..Reply::ok("oops") },
        // Echoes the credentials it was sent, as a careless server might.
        "/echo" => Reply::ok(format!("{:?}", request.headers.iter().find(|h| h.starts_with("authorization")))),
        _ => Reply { status: 404, ..Reply::ok("") },
    })
    .await?;
    let _controller = ns.start_controller().await?;
    ns.apply(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: api-token}
stringData: {token: s3cr3t-t0ken}
"#,
    )
    .await?;
    let web = |name: &str, path: &str, fields: &str| {
        let (path, json_path) = path.split_once(' ').unwrap_or((path, "'{$}'"));
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {{name: {name}}}\nspec:\n  args: [{{name: token, valueFrom: {{secretKeyRef: {{name: api-token, key: token}}}}}}]\n  metrics:\n  - name: web\n    consecutiveErrorLimit: 0\n    {fields}\n    provider:\n      web:\n        url: {}\n        timeoutSeconds: 1\n        jsonPath: {json_path}\n        headers: [{{key: Authorization, value: 'Bearer {{{{args.token}}}}'}}]\n",
            server.url(path)
        )
    };
    ns.apply(&web("json", "/health", "successCondition: result.data.ok && result.data.rate >= 0.95")).await?;
    ns.apply(&web("path", "/health '{$.data.rate}'", "successCondition: result >= 0.95")).await?;
    ns.apply(&web("text", "/text", "successCondition: result == 'OK'")).await?;
    ns.apply(&web("slow", "/slow", "successCondition: 'true'")).await?;
    ns.apply(&web("broken", "/broken", "successCondition: 'true'")).await?;
    ns.apply(&web("echo", "/echo", "successCondition: 'false'")).await?;
    assert_eq!(phase(&completed(&ns, "json").await?), AnalysisPhase::Successful);
    let path = completed(&ns, "path").await?;
    assert_eq!(phase(&path), AnalysisPhase::Successful);
    assert_eq!(path.status.as_ref().unwrap().metric_results[0].measurements[0].value.as_deref(), Some("0.97"));
    assert_eq!(phase(&completed(&ns, "text").await?), AnalysisPhase::Successful);
    let slow = completed(&ns, "slow").await?;
    assert_eq!(phase(&slow), AnalysisPhase::Error);
    assert!(message(&slow).contains("timed out"), "{}", message(&slow));
    let broken = completed(&ns, "broken").await?;
    assert!(message(&broken).contains("received non 2xx response code: 500"), "{}", message(&broken));
    let echo = completed(&ns, "echo").await?;
    let shown = serde_json::to_string(&echo.status)?;
    assert!(shown.contains("Bearer *****") && !shown.contains("s3cr3t"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn job_metrics_pass_or_fail_with_their_job_and_are_cleaned_up() -> Result<()> {
    let ns = TestNamespace::new("analysis-job").await?;
    let _controller = ns.start_controller().await?;
    let job = |name: &str, outcome: &str| {
        format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: {name}}}
spec:
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            metadata: {{labels: {{rollouts-test/job-outcome: {outcome}}}}}
            spec:
              restartPolicy: Never
              containers: [{{name: smoke, image: curlimages/curl, command: [curl, http://canary/health]}}]
"#
        )
    };
    ns.apply(&job("passes", "succeed")).await?;
    ns.apply(&job("fails", "fail")).await?;
    let passes = completed(&ns, "passes").await?;
    assert_eq!(phase(&passes), AnalysisPhase::Successful, "{}", message(&passes));
    let fails = completed(&ns, "fails").await?;
    assert_eq!(phase(&fails), AnalysisPhase::Failed, "{}", message(&fails));
    assert!(message(&fails).contains("failed (1) > failureLimit (0)"));
    // A background job metric keeping one measurement: the Jobs of trimmed measurements go.
    let mut background =
        job("background", "succeed").replace("  - name: smoke\n", "  - name: smoke\n    interval: 1s\n");
    background = background
        .replace("spec:\n  metrics:", "spec:\n  measurementRetention: [{metricName: smoke, limit: 1}]\n  metrics:");
    ns.apply(&background).await?;
    ns.wait_for::<AnalysisRun>("background", "three Jobs measured", TIMEOUT, |run| {
        run.status.as_ref().is_some_and(|s| s.metric_results.iter().any(|r| r.count >= 3))
    })
    .await?;
    e2e::poll_until(TIMEOUT, || async {
        let jobs = ns.api::<Job>().list(&ListParams::default()).await?;
        let background: Vec<_> = jobs
            .items
            .iter()
            .filter(|job| job.metadata.deletion_timestamp.is_none())
            .filter(|job| {
                job.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("analysisrun.argoproj.io/name"))
                    .map(String::as_str)
                    == Some("background")
            })
            .collect();
        Ok((background.len() <= 2).then_some(()))
    })
    .await?;
    ns.api::<AnalysisRun>()
        .patch("background", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"terminate": true}})))
        .await?;
    completed(&ns, "background").await?;
    // The Jobs are deleted when their run ends.
    e2e::poll_until(TIMEOUT, || async {
        let jobs = ns.api::<Job>().list(&ListParams::default()).await?;
        Ok(jobs.items.iter().all(|job| job.metadata.deletion_timestamp.is_some()).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn bad_runs_are_refused_or_reported_and_upstream_examples_apply() -> Result<()> {
    let ns = TestNamespace::new("analysis-invalid").await?;
    let _controller = ns.start_controller().await?;
    // Admission refuses what the schema can check.
    let two_providers = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: two}\nspec:\n  metrics:\n  - name: m\n    provider: {web: {url: 'http://x'}, job: {spec: {}}}\n";
    let refused = kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(two_providers)).await?;
    assert!(!refused.success && refused.stderr.contains("set exactly one provider"), "{}", refused.stderr);
    let bad_duration = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: dur}\nspec:\n  metrics:\n  - name: m\n    interval: 5 minutes\n    provider: {web: {url: 'http://x'}}\n";
    let refused = kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(bad_duration)).await?;
    assert!(!refused.success && refused.stderr.contains("interval"), "{}", refused.stderr);
    // The controller reports the rest on the run, at once.
    ns.apply(&prometheus_run("expr", "http://127.0.0.1:9", "up", "successCondition: result[0] >=")).await?;
    ns.apply("apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: arg}\nspec:\n  args: [{name: service}]\n  metrics:\n  - name: m\n    provider: {prometheus: {address: 'http://127.0.0.1:9', query: 'up{s=\"{{args.service}}\"}'}}\n").await?;
    ns.apply("apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: datadog}\nspec:\n  metrics:\n  - name: m\n    provider: {datadog: {query: 'avg:x'}}\n").await?;
    let expr = completed(&ns, "expr").await?;
    assert!(
        message(&expr).starts_with("Analysis spec invalid: metrics[0]: successCondition \"result[0] >=\": column"),
        "{}",
        message(&expr)
    );
    assert_eq!(
        message(&completed(&ns, "arg").await?),
        "Unable to resolve metric arguments: argument \"service\" was not supplied"
    );
    assert_eq!(
        message(&completed(&ns, "datadog").await?),
        "Analysis spec invalid: metrics[0]: provider datadog is not supported by this controller yet"
    );
    // Nothing more is written for a run that ended: once a later run has completed too, each
    // bad run still has only its creation and its one status write (the generation counts both).
    ns.apply(&prometheus_run("barrier", "http://127.0.0.1:9", "up", "consecutiveErrorLimit: 0")).await?;
    completed(&ns, "barrier").await?;
    for name in ["expr", "arg", "datadog"] {
        let run = ns.api::<AnalysisRun>().get(name).await?;
        assert_eq!(run.metadata.generation, Some(2), "{name} was written again after it ended");
    }
    // The templates users copy from upstream's docs and Flagger's tutorials apply unchanged.
    ns.apply(&read_repo_file("examples/analysis/templates.yaml")).await?;
    Ok(())
}
