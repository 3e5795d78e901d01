//! Proves the harness's stand-ins: a real Prometheus per test (`e2e::prometheus`), and Jobs that
//! finish because kwok ends their pods as `rollouts-test/job-outcome` says
//! (`tests/cluster/stages.yaml`), with the real Job controller judging them.

use std::io::ErrorKind;
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::fixtures::deployment;
use e2e::prometheus::Prometheus;
use e2e::{DEFAULT_TIMEOUT, TestNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::api::ListParams;
use serde_json::json;

/// The one sample an instant query returns: its labels and its value as Prometheus prints it.
async fn only_sample(prometheus: &Prometheus, promql: &str) -> Result<(serde_json::Value, String)> {
    let data = prometheus.query(promql).await?;
    let result = data["result"].as_array().with_context(|| format!("{promql}: no result in {data}"))?;
    anyhow::ensure!(result.len() == 1, "{promql}: expected one sample, got {data}");
    let value = result[0]["value"][1].as_str().with_context(|| format!("{promql}: no value in {data}"))?;
    Ok((result[0]["metric"].clone(), value.to_string()))
}

#[tokio::test]
#[ignore = "e2e: needs the binaries of `make cluster-build`"]
async fn pushed_samples_are_visible_to_the_next_query() -> Result<()> {
    let prometheus = Prometheus::start().await?;
    prometheus
        .push("request_success_rate{service=\"canary\"} 0.82\nrequest_success_rate{service=\"stable\"} 1")
        .await?;
    prometheus.set("error_ratio", f64::NAN).await?;

    let (labels, value) = only_sample(&prometheus, "request_success_rate{service=\"canary\"}").await?;
    assert_eq!(labels, json!({"__name__": "request_success_rate", "service": "canary"}), "no labels added");
    assert_eq!(value, "0.82");
    assert_eq!(only_sample(&prometheus, "error_ratio").await?.1, "NaN");

    prometheus.set("request_success_rate{service=\"canary\"}", 0.5).await?;
    assert_eq!(only_sample(&prometheus, "request_success_rate{service=\"canary\"}").await?.1, "0.5");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the binaries of `make cluster-build`"]
async fn a_stopped_prometheus_refuses_connections_and_restarts_on_its_port_with_its_data() -> Result<()> {
    let mut prometheus = Prometheus::start().await?;
    let url = prometheus.url();
    prometheus.set("request_success_rate", 0.9).await?;

    prometheus.stop().await;
    let error = prometheus.query("request_success_rate").await.expect_err("a stopped Prometheus answered");
    let refused = error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|error| error.kind() == ErrorKind::ConnectionRefused)
    });
    assert!(refused, "expected connection refused, got {error:#}");

    prometheus.restart().await?;
    assert_eq!(prometheus.url(), url);
    assert_eq!(only_sample(&prometheus, "request_success_rate").await?.1, "0.9", "the sample survives a restart");
    prometheus.set("request_success_rate", 0.4).await?;
    assert_eq!(only_sample(&prometheus, "request_success_rate").await?.1, "0.4");
    Ok(())
}

/// A Job of one pod and no retry; `pod_metadata` (a YAML flow mapping) labels its pod, e.g.
/// `{labels: {rollouts-test/job-outcome: succeed}}`.
fn job(name: &str, pod_metadata: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  backoffLimit: 0
  template:
    metadata: {pod_metadata}
    spec:
      restartPolicy: Never
      containers: [{{name: check, image: busybox}}]
"#
    )
}

fn has_condition(job: &Job, type_: &str) -> bool {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The pod of Job `name`, and how its one container ended.
async fn finished_pod(ns: &TestNamespace, name: &str) -> Result<(Pod, ContainerStateTerminated)> {
    let selector = format!("batch.kubernetes.io/job-name={name}");
    let pods = ns.api::<Pod>().list(&ListParams::default().labels(&selector)).await?.items;
    anyhow::ensure!(pods.len() == 1, "Job {name} has {} pods, expected 1", pods.len());
    let pod = pods.into_iter().next().context("a pod")?;
    let terminated = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| statuses.first())
        .and_then(|status| status.state.as_ref())
        .and_then(|state| state.terminated.clone())
        .with_context(|| format!("the pod of Job {name} has no terminated container: {:?}", pod.status))?;
    Ok((pod, terminated))
}

fn ran_for(terminated: &ContainerStateTerminated) -> Result<Duration> {
    let started = terminated.started_at.as_ref().context("no startedAt")?.0;
    let finished = terminated.finished_at.as_ref().context("no finishedAt")?.0;
    Ok(Duration::try_from(finished.duration_since(started))?)
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_job_whose_pod_succeeds_is_complete() -> Result<()> {
    let ns = TestNamespace::new("harness-job-succeeds").await?;
    ns.apply(&job("check", "{labels: {rollouts-test/job-outcome: succeed}}")).await?;
    let job = ns.wait_for::<Job>("check", "Complete=True", DEFAULT_TIMEOUT, |j| has_condition(j, "Complete")).await?;
    assert_eq!(job.status.as_ref().and_then(|s| s.succeeded), Some(1));

    let (pod, terminated) = finished_pod(&ns, "check").await?;
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Succeeded"));
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (0, Some("Completed")));
    assert!(ran_for(&terminated)? >= Duration::from_secs(1), "a pod runs 1 s unless told otherwise");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_job_whose_pod_fails_is_failed() -> Result<()> {
    let ns = TestNamespace::new("harness-job-fails").await?;
    ns.apply(&job("check", "{labels: {rollouts-test/job-outcome: fail}}")).await?;
    let job = ns.wait_for::<Job>("check", "Failed=True", DEFAULT_TIMEOUT, |j| has_condition(j, "Failed")).await?;
    assert_eq!(job.status.as_ref().and_then(|s| s.failed), Some(1));
    assert!(!has_condition(&job, "Complete"));

    let (pod, terminated) = finished_pod(&ns, "check").await?;
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Failed"));
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (1, Some("Error")));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_job_duration_annotation_sets_how_long_its_pod_runs() -> Result<()> {
    let ns = TestNamespace::new("harness-job-duration").await?;
    ns.apply(&job(
        "check",
        "{labels: {rollouts-test/job-outcome: succeed}, annotations: {rollouts-test/job-duration: 3s}}",
    ))
    .await?;
    ns.wait_for::<Job>("check", "Complete=True", DEFAULT_TIMEOUT, |j| has_condition(j, "Complete")).await?;

    let (_, terminated) = finished_pod(&ns, "check").await?;
    // Timestamps have whole seconds: the difference of two truncated ones is still at least 3 s.
    assert!(ran_for(&terminated)? >= Duration::from_secs(3), "ran {:?}", ran_for(&terminated)?);
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn pods_without_an_outcome_label_behave_as_before() -> Result<()> {
    let ns = TestNamespace::new("harness-plain-pods").await?;
    ns.apply(&deployment("web", 1, "nginx:1.27")).await?;
    ns.wait_for::<Deployment>("web", "1 ready replica", DEFAULT_TIMEOUT, |d| {
        d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1)
    })
    .await?;
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("app=web")).await?.items;
    let phases: Vec<_> = pods.iter().map(|p| p.status.as_ref().and_then(|s| s.phase.clone())).collect();
    assert_eq!(phases, [Some("Running".to_string())]);

    // A Job's pod without the label still succeeds at once, as kwok's default Stages make it.
    ns.apply(&job("plain", "{}")).await?;
    ns.wait_for::<Job>("plain", "Complete=True", DEFAULT_TIMEOUT, |j| has_condition(j, "Complete")).await?;
    Ok(())
}
