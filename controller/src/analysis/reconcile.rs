//! One reconcile of one AnalysisRun: start (pure) → take the due measurements (providers, at
//! once) → finish (pure) → one status patch if anything changed → requeue at the next due time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use serde_json::json;
use tracing::Instrument;

use super::args::{self, Secrets};
use super::metric::{Invalid, prepare};
use super::plan::{self, Finished, Measuring, Start};
use super::providers::{Providers, job};
use super::schedule::{Due, Task};
use crate::api::{AnalysisRun, AnalysisRunStatus, FIELD_MANAGER, Measurement};
use crate::cache::{Key, key_of};
use crate::context::{Context, Error, retry_delay};
use crate::runtime::analysis_metrics::MetricState;
use crate::written::WrittenCopies;

const LONGEST_REQUEUE: Duration = Duration::from_secs(24 * 3600);

/// What reconciles of AnalysisRuns share.
pub struct Analysis {
    pub ctx: Arc<Context>,
    pub providers: Providers,
    /// Runs as this controller last wrote them, until the cache catches up: a reconcile woken
    /// before our own write reaches the cache must not take a measurement a second time.
    written: WrittenCopies<AnalysisRun>,
    failures: Mutex<HashMap<Key, u32>>,
    /// Uids of completed runs whose Jobs are deleted.
    cleaned: Mutex<HashSet<String>>,
}

impl Analysis {
    pub fn new(ctx: Arc<Context>, providers: Providers) -> Self {
        Analysis {
            ctx,
            providers,
            written: WrittenCopies::default(),
            failures: Mutex::default(),
            cleaned: Mutex::default(),
        }
    }

    /// A run was deleted: forget it.
    pub fn forget(&self, run: &AnalysisRun) {
        let key = key_of(run);
        self.written.forget(&key);
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        self.cleaned.lock().unwrap_or_else(|p| p.into_inner()).remove(&run.uid().unwrap_or_default());
        self.ctx.metrics.analysis.forget_run(&key.0, &key.1);
    }

    async fn write_status(&self, run: &AnalysisRun, status: &AnalysisRunStatus) -> Result<(), Error> {
        if run.status.as_ref() == Some(status) {
            return Ok(());
        }
        let api: Api<AnalysisRun> = Api::namespaced(self.ctx.client.clone(), &run.namespace().unwrap_or_default());
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        // No status subresource: a merge patch of the status on the object, as upstream. With the
        // resourceVersion it was computed from: a status from a stale copy is refused (409) and
        // computed again from the current one.
        let patch = json!({ "metadata": { "resourceVersion": run.resource_version() }, "status": status });
        let written = api.patch(&run.name_any(), &params, &Patch::Merge(&patch)).await?;
        self.written.remember(written);
        Ok(())
    }
}

pub async fn reconcile(cached: Arc<AnalysisRun>, analysis: Arc<Analysis>) -> Result<Requeue, Error> {
    let run = analysis.written.freshest(&cached);
    let (namespace, name) = key_of(&run);
    let span = tracing::info_span!("analysisrun", namespace = %namespace, name = %name);
    reconcile_run(run, analysis).instrument(span).await
}

async fn reconcile_run(run: AnalysisRun, analysis: Arc<Analysis>) -> Result<Requeue, Error> {
    let (namespace, name) = key_of(&run);
    let now = Timestamp::now();
    let requeue_at = match plan::start(&run, now) {
        Start::Completed { expires_at } => {
            // Known after a restart too, though nothing is written.
            record_metrics(&analysis, &run, run.status.as_ref().unwrap_or(&AnalysisRunStatus::default()));
            clean_up_jobs(&analysis, &run).await?;
            if expires_at.is_some_and(|at| at <= now) {
                let api: Api<AnalysisRun> = Api::namespaced(analysis.ctx.client.clone(), &namespace);
                api.delete(&name, &DeleteParams::background()).await?;
                tracing::info!("deleted a completed run (ttlStrategy)");
                return Ok(Requeue::await_change());
            }
            expires_at
        }
        Start::Invalid(finished) => finish_run(&analysis, &run, finished).await?,
        Start::Measuring(measuring) => {
            let finished = measure(&analysis, &run, measuring).await?;
            finish_run(&analysis, &run, finished).await?
        }
    };
    analysis.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&(namespace, name));
    Ok(match requeue_at {
        Some(at) => Requeue::requeue(
            Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default().min(LONGEST_REQUEUE),
        ),
        None => Requeue::await_change(),
    })
}

/// Takes the due measurements, all at once, and works out the status they lead to.
async fn measure(analysis: &Analysis, run: &AnalysisRun, measuring: Measuring) -> Result<Finished, Error> {
    let now = Timestamp::now();
    let due = measuring.schedule.due.clone();
    if due.is_empty() {
        return Ok(plan::finish(run, measuring, Vec::new(), now));
    }
    // Secrets are read only when a measurement needs them, and never leave this function.
    let secrets = match read_secrets(analysis, run).await? {
        Ok(secrets) => secrets,
        Err(reason) => return Ok(plan::errored(measuring.status, &Invalid::Arguments(reason), now)),
    };
    let metrics = match &secrets {
        Secrets::Masked => measuring.metrics.clone(),
        Secrets::Read(_) => match prepare(&run.spec, &run.metadata, &secrets) {
            Ok(metrics) => metrics,
            // Its details would show the values: say only where they came from.
            Err(_) => {
                let reason = "the values read from Secrets make the metrics invalid (a quote, a backslash or a newline in a condition?)";
                return Ok(plan::errored(measuring.status, &Invalid::Arguments(reason.into()), now));
            }
        },
    };
    let hidden = secrets.values();
    let taken = futures::future::join_all(due.iter().map(|due| async {
        let last = measuring.status.metric_results.iter().find(|r| r.name == metrics[due.metric].metric.name);
        let last = last.and_then(|r| r.measurements.last());
        let measurement = take(analysis, run, &metrics[due.metric], *due, last, now).await;
        (*due, redact(measurement, &hidden))
    }))
    .await;
    for (due, measurement) in &taken {
        let late_by = Duration::try_from(now.duration_since(due.due_at)).unwrap_or_default();
        analysis.ctx.metrics.analysis.measured(&measuring.metrics[due.metric].provider, measurement.phase, late_by);
    }
    Ok(plan::finish(run, measuring, taken, Timestamp::now()))
}

async fn take(
    analysis: &Analysis,
    run: &AnalysisRun,
    prepared: &super::metric::Prepared,
    due: Due,
    last: Option<&Measurement>,
    now: Timestamp,
) -> Measurement {
    let kube = &analysis.providers.kube;
    match (due.task, last) {
        (Task::Resume, Some(last)) => job::resume(kube, last, now).await,
        (Task::Terminate, Some(last)) => job::terminate(kube, last).await,
        _ => analysis.providers.measure(run, prepared, now).await,
    }
}

/// What a provider answered, with every secret value replaced by `*****`.
fn redact(mut measurement: Measurement, secrets: &[&str]) -> Measurement {
    if secrets.is_empty() {
        return measurement;
    }
    let hide = |text: &mut Option<String>| *text = text.as_deref().map(|t| args::redact(t, secrets));
    hide(&mut measurement.message);
    hide(&mut measurement.value);
    for value in measurement.metadata.values_mut() {
        *value = args::redact(value, secrets);
    }
    measurement
}

/// The values of the Secret keys the run's arguments read. A missing Secret or key ends the run
/// (the inner error); a failed read is retried (the outer one).
async fn read_secrets(analysis: &Analysis, run: &AnalysisRun) -> Result<Result<Secrets, String>, Error> {
    let refs = args::secret_refs(&run.spec.args);
    if refs.is_empty() {
        return Ok(Ok(Secrets::Masked));
    }
    let api: Api<Secret> = Api::namespaced(analysis.ctx.client.clone(), &run.namespace().unwrap_or_default());
    let mut values = BTreeMap::new();
    for reference in refs {
        let Some(secret) = api.get_opt(&reference.name).await? else {
            return Ok(Err(format!("secret '{}' not found", reference.name)));
        };
        let Some(value) = secret.data.as_ref().and_then(|data| data.get(&reference.key)) else {
            return Ok(Err(format!("key '{}' does not exist in secret '{}'", reference.key, reference.name)));
        };
        values.insert((reference.name.clone(), reference.key.clone()), String::from_utf8_lossy(&value.0).into_owned());
    }
    Ok(Ok(Secrets::Read(values)))
}

/// Deletes the Jobs of a completed run, once per run in this process: after its status is
/// written, so a crash in between can't make a finished Job look deleted and run it again; and
/// again after a restart, in case the crash came before this.
async fn clean_up_jobs(analysis: &Analysis, run: &AnalysisRun) -> Result<(), Error> {
    let uid = run.uid().unwrap_or_default();
    if !job::uses_jobs(run) || analysis.cleaned.lock().unwrap_or_else(|p| p.into_inner()).contains(&uid) {
        return Ok(());
    }
    job::delete_all(&analysis.ctx.client, run).await?;
    analysis.cleaned.lock().unwrap_or_else(|p| p.into_inner()).insert(uid);
    Ok(())
}

/// Writes the status and Events, records the metrics, and cleans up a completed run.
async fn finish_run(analysis: &Analysis, run: &AnalysisRun, finished: Finished) -> Result<Option<Timestamp>, Error> {
    let Finished { status, events, requeue_at } = finished;
    analysis.write_status(run, &status).await?;
    // After the status: a crash before it leaves the measurements, and their Jobs, as they were.
    job::delete(&analysis.ctx.client, &job::trimmed(run.status.as_ref(), &status)).await;
    analysis.ctx.events.publish(run, &events);
    record_metrics(analysis, run, &status);
    if status.phase.completed() {
        clean_up_jobs(analysis, run).await?;
    }
    Ok(requeue_at)
}

/// The run's phase and its metrics' phases, for `analysis_run_info` and `analysis_run_metric_phase`.
fn record_metrics(analysis: &Analysis, run: &AnalysisRun, status: &AnalysisRunStatus) {
    let providers: BTreeMap<&str, String> = run
        .spec
        .metrics
        .iter()
        .map(|metric| (metric.name.as_str(), metric.provider.name().unwrap_or_default()))
        .collect();
    let states: Vec<MetricState<'_>> = status
        .metric_results
        .iter()
        .map(|result| MetricState {
            name: &result.name,
            provider: providers.get(result.name.as_str()).map_or("", |p| p.as_str()),
            phase: result.phase,
        })
        .collect();
    let (namespace, name) = key_of(run);
    analysis.ctx.metrics.analysis.run(&namespace, &name, status.phase, &states);
}

/// Transient failures retry with exponential backoff per run: 0.5 s, 1 s, 2 s ... 5 min.
pub fn error_policy(run: Arc<AnalysisRun>, error: &Error, analysis: Arc<Analysis>) -> Requeue {
    let key = key_of(&*run);
    let count = {
        let mut failures = analysis.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.clone()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = retry_delay(count);
    tracing::warn!(namespace = %key.0, name = %key.1, category = error.category(), %error, retry_in = ?delay, "analysis run reconcile failed");
    Requeue::requeue(delay)
}
