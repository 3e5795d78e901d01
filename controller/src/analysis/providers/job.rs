//! `job`: a batch Job made from the metric's spec, owned by the run. Successful when it
//! completes, Failed when it fails; looked at again with a growing wait while it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::finished;
use crate::analysis::metric::Prepared;
use crate::analysis::schedule::later;
use crate::api::{AnalysisPhase, AnalysisRun, AnalysisRunStatus, FIELD_MANAGER, JobMetric, Measurement};

/// Label on the Jobs (and their pods) of a run: its uid.
pub const RUN_UID_LABEL: &str = "analysisrun.argoproj.io/uid";
const JOB_NAME: &str = "job-name";
const JOB_NAMESPACE: &str = "job-namespace";

/// `<run uid>.<metric>.<n>`, as upstream names them, cut to a valid name.
fn job_name(run: &AnalysisRun, metric: &str, attempt: i32) -> String {
    let uid = run.uid().unwrap_or_default();
    let suffix = format!(".{attempt}");
    let room = 63usize.saturating_sub(uid.len() + 1 + suffix.len());
    let metric: String = metric.chars().take(room).collect();
    format!("{uid}.{}{suffix}", metric.trim_end_matches(['.', '-']))
}

fn in_flight(started: Timestamp, job: &str, namespace: &str, resume_at: Timestamp) -> Measurement {
    Measurement {
        phase: AnalysisPhase::Running,
        started_at: Some(MicroTime(started)),
        resume_at: Some(MicroTime(resume_at)),
        metadata: BTreeMap::from([(JOB_NAME.into(), job.into()), (JOB_NAMESPACE.into(), namespace.into())]),
        ..Default::default()
    }
}

/// Creates the Job of a new measurement.
pub async fn start(
    client: &kube::Client,
    run: &AnalysisRun,
    prepared: &Prepared,
    metric: &JobMetric,
    now: Timestamp,
) -> Measurement {
    let namespace = run.namespace().unwrap_or_default();
    let result = prepared_result(run, &prepared.metric.name);
    let name = job_name(run, &prepared.metric.name, result.0 + result.1 + 1);
    match create(client, run, &prepared.metric.name, metric, &name, &namespace).await {
        Ok(()) => in_flight(now, &name, &namespace, later(now, Duration::from_secs(1))),
        Err(message) => finished(now, AnalysisPhase::Error, Some(message)),
    }
}

/// (count, error) of the metric so far: the next Job's number follows them.
fn prepared_result(run: &AnalysisRun, metric: &str) -> (i32, i32) {
    let result = run.status.as_ref().and_then(|s| s.metric_results.iter().find(|r| r.name == metric));
    result.map_or((0, 0), |r| (r.count, r.error))
}

async fn create(
    client: &kube::Client,
    run: &AnalysisRun,
    metric_name: &str,
    metric: &JobMetric,
    name: &str,
    namespace: &str,
) -> Result<(), String> {
    let uid = run.uid().unwrap_or_default();
    let metadata = metric.metadata.clone().unwrap_or_default();
    let mut labels = metadata.labels;
    labels.insert(RUN_UID_LABEL.into(), uid.clone());
    let mut annotations = metadata.annotations;
    annotations.insert("analysisrun.argoproj.io/name".into(), run.name_any());
    annotations.insert("analysisrun.argoproj.io/namespace".into(), namespace.into());
    annotations.insert("analysisrun.argoproj.io/metric-name".into(), metric_name.into());
    let mut spec = metric.spec.clone();
    // The pods carry the run's uid too, so they can be found from it.
    if let Some(template) = spec.get_mut("template").and_then(|t| t.as_object_mut()) {
        let meta = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let pod_labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(pod_labels) = pod_labels.as_object_mut() {
                pod_labels.insert(RUN_UID_LABEL.into(), uid.clone().into());
            }
        }
    }
    let owner = run.controller_owner_ref(&()).ok_or("the AnalysisRun has no uid yet")?;
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name, "namespace": namespace, "labels": labels, "annotations": annotations, "ownerReferences": [owner] },
        "spec": spec,
    });
    let job: Job = serde_json::from_value(job).map_err(|error| format!("job spec: {error}"))?;
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match api.create(&params, &job).await {
        Ok(_) => Ok(()),
        // Created before a crash that lost the status: it is ours, so it is this measurement.
        Err(kube::Error::Api(status)) if status.code == 409 => match api.get(name).await {
            Ok(existing) if existing.labels().get(RUN_UID_LABEL) == Some(&uid) => Ok(()),
            _ => Err(format!("Job {name} exists and belongs to something else")),
        },
        Err(error) => Err(format!("creating Job {name}: {error}")),
    }
}

/// How long to wait before looking at a running Job again: grows with its age, 1 s to 10 s.
fn backoff(started: Timestamp, now: Timestamp) -> Duration {
    let elapsed = now.duration_since(started).as_secs_f64().max(0.0);
    Duration::from_secs_f64((2.0 * elapsed).sqrt().clamp(1.0, 10.0))
}

/// Looks at the Job of an in-flight measurement.
pub async fn resume(client: &kube::Client, last: &Measurement, now: Timestamp) -> Measurement {
    let started = last.started_at.as_ref().map_or(now, |t| t.0);
    let (Some(name), Some(namespace)) = (last.metadata.get(JOB_NAME), last.metadata.get(JOB_NAMESPACE)) else {
        return finished(started, AnalysisPhase::Error, Some("the measurement names no Job".into()));
    };
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let job = match api.get_opt(name).await {
        Ok(Some(job)) => job,
        Ok(None) => return finished(started, AnalysisPhase::Error, Some(format!("Job {name} was deleted"))),
        Err(error) => {
            let mut retry = in_flight(started, name, namespace, later(now, backoff(started, now)));
            retry.message = Some(format!("reading Job {name}: {error}"));
            return retry;
        }
    };
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True");
    if holds("Complete").is_some() {
        return Measurement { metadata: last.metadata.clone(), ..finished(started, AnalysisPhase::Successful, None) };
    }
    if let Some(failed) = holds("Failed") {
        let message = format!(
            "Job {name} failed: {}",
            failed.message.clone().unwrap_or_else(|| failed.reason.clone().unwrap_or_default())
        );
        return Measurement {
            metadata: last.metadata.clone(),
            ..finished(started, AnalysisPhase::Failed, Some(message))
        };
    }
    in_flight(started, name, namespace, later(now, backoff(started, now)))
}

/// Stops the Job of an in-flight measurement: the run is terminating.
pub async fn terminate(client: &kube::Client, last: &Measurement) -> Measurement {
    let started = last.started_at.as_ref().map_or_else(Timestamp::now, |t| t.0);
    if let (Some(name), Some(namespace)) = (last.metadata.get(JOB_NAME), last.metadata.get(JOB_NAMESPACE)) {
        let api: Api<Job> = Api::namespaced(client.clone(), namespace);
        if let Err(error) = api.delete(name, &DeleteParams::background()).await {
            tracing::debug!(%error, job = %name, "could not delete a terminated measurement's Job");
        }
    }
    Measurement {
        metadata: last.metadata.clone(),
        ..finished(started, AnalysisPhase::Inconclusive, Some("Metric Terminated".into()))
    }
}

/// The Jobs (namespace, name) of measurements that `before` held and `after` no longer does:
/// trimmed by the retention limit, so their Jobs go too.
pub fn trimmed(before: Option<&AnalysisRunStatus>, after: &AnalysisRunStatus) -> Vec<(String, String)> {
    let jobs = |status: &AnalysisRunStatus| -> BTreeSet<(String, String)> {
        status
            .metric_results
            .iter()
            .flat_map(|result| &result.measurements)
            .filter_map(|m| Some((m.metadata.get(JOB_NAMESPACE)?.clone(), m.metadata.get(JOB_NAME)?.clone())))
            .collect()
    };
    let kept = jobs(after);
    before.map(jobs).unwrap_or_default().into_iter().filter(|job| !kept.contains(job)).collect()
}

/// Deletes the Jobs of trimmed measurements; one that is already gone is fine.
pub async fn delete(client: &kube::Client, jobs: &[(String, String)]) {
    for (namespace, name) in jobs {
        let api: Api<Job> = Api::namespaced(client.clone(), namespace);
        if let Err(error) = api.delete(name, &DeleteParams::background()).await {
            tracing::debug!(%error, job = %name, "could not delete a trimmed measurement's Job");
        }
    }
}

/// Deletes every Job of a run that has ended (their pods with them).
pub async fn delete_all(client: &kube::Client, run: &AnalysisRun) -> Result<(), kube::Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), &run.namespace().unwrap_or_default());
    let selector = format!("{RUN_UID_LABEL}={}", run.uid().unwrap_or_default());
    api.delete_collection(&DeleteParams::background(), &ListParams::default().labels(&selector)).await?;
    Ok(())
}

pub fn uses_jobs(run: &AnalysisRun) -> bool {
    run.spec.metrics.iter().any(|metric| metric.provider.job.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AnalysisRunSpec;

    #[test]
    fn job_names_are_the_run_uid_metric_and_attempt_within_63_characters() {
        let mut run = AnalysisRun::new("run", AnalysisRunSpec::default());
        run.metadata.uid = Some("0f8fad5b-d9cb-469f-a165-70867728950e".into());
        assert_eq!(job_name(&run, "smoke", 1), "0f8fad5b-d9cb-469f-a165-70867728950e.smoke.1");
        let long = job_name(&run, &"x".repeat(80), 12);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with(".12"));
        assert!(!job_name(&run, "abcdefghijklmnopqrstuvwxyz-", 1).contains("-."), "no name part ends in '-'");
    }

    #[test]
    fn the_jobs_of_trimmed_measurements_are_the_ones_to_delete() {
        let job = |name: &str| Measurement {
            metadata: BTreeMap::from([(JOB_NAME.into(), name.into()), (JOB_NAMESPACE.into(), "ns".into())]),
            ..Default::default()
        };
        let status = |names: &[&str]| AnalysisRunStatus {
            metric_results: vec![crate::api::MetricResult {
                name: "smoke".into(),
                measurements: names.iter().map(|n| job(n)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(trimmed(Some(&status(&["a", "b"])), &status(&["b", "c"])), [("ns".to_string(), "a".to_string())]);
        assert!(trimmed(None, &status(&["a"])).is_empty());
        assert!(trimmed(Some(&status(&["a"])), &status(&["a"])).is_empty());
    }

    #[test]
    fn a_running_job_is_looked_at_again_sooner_while_young() {
        let start = Timestamp::UNIX_EPOCH;
        assert_eq!(backoff(start, start), Duration::from_secs(1));
        assert_eq!(backoff(start, later(start, Duration::from_secs(8))), Duration::from_secs(4));
        assert_eq!(backoff(start, later(start, Duration::from_secs(3600))), Duration::from_secs(10));
    }
}
