//! What these tests share: the examples made local, Flagger's load tester, a
//! Rollout's AnalysisRuns, and what an automatic abort must say.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use e2e::TestNamespace;
use e2e::rollouts::{phase, status};
use e2e::traffic::{Routing, TrafficState};
use e2e::web::{Reply, WebServer};
use futures::TryStreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::ListParams;
use kube::runtime::watcher;
use rollouts_controller::api::{
    AnalysisPhase, AnalysisRun, Measurement, POD_TEMPLATE_HASH_LABEL, ROLLOUT_TYPE_LABEL, Rollout, STEP_INDEX_LABEL,
};

/// How long a run or a rollout may take to get somewhere in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// `yaml` with each `(from, to)` replaced everywhere. Fails if a `from` is absent, or if
/// anything but the replaced strings differs (a `to` that was in `yaml` already): the examples
/// run as written but for these.
pub fn localize(yaml: &str, replacements: &[(&str, &str)]) -> Result<String> {
    let mut local = yaml.to_string();
    for (from, to) in replacements {
        ensure!(local.contains(from), "{from:?} is not in the example");
        ensure!(!yaml.contains(to), "{to:?} is in the example already");
        local = local.replace(from, to);
    }
    let restored = replacements.iter().fold(local.clone(), |text, (from, to)| text.replace(to, from));
    ensure!(restored == yaml, "replacing {replacements:?} changed more than those strings");
    Ok(local)
}

/// One webhook call the load tester received.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: String,
    pub namespace: String,
    /// `metadata.type` (the load tester's default, a queued shell command, when absent).
    pub kind: Option<String>,
    pub cmd: String,
}

/// Flagger's load tester as a webhook caller sees it (fluxcd/flagger pkg/loadtester/server.go):
/// a payload without `metadata` is refused (400 "metadata not found in payload"), a `bash`
/// command is run before the answer (200), any other is queued (202).
pub struct LoadTester {
    server: WebServer,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl LoadTester {
    pub async fn start() -> Result<LoadTester> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let server = WebServer::start(move |request| {
            let payload: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
            let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
            let metadata = &payload["metadata"];
            if request.method != "POST" || !metadata.is_object() {
                return Reply { status: 400, ..Reply::ok("metadata not found in payload") };
            }
            let kind = metadata["type"].as_str().map(str::to_string);
            let status = if kind.as_deref() == Some("bash") { 200 } else { 202 };
            let call = Call {
                name: text(&payload["name"]),
                namespace: text(&payload["namespace"]),
                kind,
                cmd: text(&metadata["cmd"]),
            };
            recorded.lock().expect("load tester lock").push(call);
            Reply { status, ..Reply::ok("") }
        })
        .await?;
        Ok(LoadTester { server, calls })
    }

    /// The URL the examples' webhooks call instead of Flagger's load tester.
    pub fn url(&self) -> String {
        self.server.url("/")
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("load tester lock").clone()
    }
}

/// The runs in the namespace, oldest first.
pub async fn runs(ns: &TestNamespace) -> Result<Vec<AnalysisRun>> {
    let mut runs = ns.api::<AnalysisRun>().list(&ListParams::default()).await?.items;
    runs.sort_by_key(|run| (run.creation_timestamp(), run.name_any()));
    Ok(runs)
}

pub fn run_phase(run: &AnalysisRun) -> AnalysisPhase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The measurements of a run's first metric.
pub fn measurements(run: &AnalysisRun) -> Vec<Measurement> {
    run.status.as_ref().and_then(|s| s.metric_results.first()).map(|r| r.measurements.clone()).unwrap_or_default()
}

/// The name a Rollout gives the run of step `step` (or its background run, with `None`) for a
/// revision: `<rollout>-<hash>-<revision>[-<step>]`.
pub fn run_name(rollout: &str, hash: &str, revision: u32, step: Option<usize>) -> String {
    match step {
        Some(step) => format!("{rollout}-{hash}-{revision}-{step}"),
        None => format!("{rollout}-{hash}-{revision}"),
    }
}

/// Every run of a namespace as a watch last saw it, deleted ones included (a Rollout deletes its
/// oldest completed runs beyond its history limits).
pub struct RunWatch {
    seen: Arc<Mutex<BTreeMap<String, AnalysisRun>>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunWatch {
    /// Watches the runs of `ns` from now on; returns once the watch has listed them.
    pub async fn start(ns: &TestNamespace) -> Result<RunWatch> {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let (listed, is_listed) = tokio::sync::oneshot::channel();
        let (recorded, api) = (seen.clone(), ns.api::<AnalysisRun>());
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            let mut listed = Some(listed);
            while let Some(event) = events.try_next().await? {
                match event {
                    watcher::Event::Apply(run) | watcher::Event::InitApply(run) | watcher::Event::Delete(run) => {
                        recorded.lock().expect("run watch lock").insert(run.name_any(), run);
                    }
                    watcher::Event::InitDone => drop(listed.take().map(|listed| listed.send(()))),
                    watcher::Event::Init => {}
                }
            }
            Ok(())
        });
        if is_listed.await.is_err() {
            bail!("the run watch stopped before listing");
        }
        Ok(RunWatch { seen, task })
    }

    /// Each run seen, by name, as last seen.
    pub fn runs(&self) -> Result<BTreeMap<String, AnalysisRun>> {
        ensure!(!self.task.is_finished(), "the run watch stopped");
        Ok(self.seen.lock().expect("run watch lock").clone())
    }
}

impl Drop for RunWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until run `name` exists and satisfies `done`.
pub async fn wait_run(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    done: impl Fn(&AnalysisRun) -> bool,
) -> Result<AnalysisRun> {
    ns.wait_for::<AnalysisRun>(name, &format!("run {name}: {what}"), TIMEOUT, done).await
}

/// Waits until run `name` has completed.
pub async fn completed(ns: &TestNamespace, name: &str) -> Result<AnalysisRun> {
    wait_run(ns, name, "completed", |run| run_phase(run).completed()).await
}

/// Checks what a Rollout's run carries: its hash, its kind (`Step` with its index, or
/// `Background`), and the Rollout as its controller.
pub fn check_run_identity(run: &AnalysisRun, rollout: &Rollout, hash: &str, step: Option<usize>) -> Result<()> {
    let labels = run.labels();
    let (kind, index) = match step {
        Some(step) => ("Step", Some(step.to_string())),
        None => ("Background", None),
    };
    ensure!(labels.get(POD_TEMPLATE_HASH_LABEL).map(String::as_str) == Some(hash), "hash label: {labels:?}");
    ensure!(labels.get(ROLLOUT_TYPE_LABEL).map(String::as_str) == Some(kind), "rollout-type label: {labels:?}");
    ensure!(labels.get(STEP_INDEX_LABEL) == index.as_ref(), "step-index label: {labels:?}");
    let owner = run.owner_references().iter().find(|o| o.controller == Some(true)).context("run has no controller")?;
    ensure!(
        owner.kind == "Rollout" && owner.name == rollout.name_any() && Some(&owner.uid) == rollout.uid().as_ref(),
        "run {} is controlled by {owner:?}",
        run.name_any()
    );
    Ok(())
}

/// What a failed metric must make an abort say.
#[derive(Clone, Copy, Debug)]
pub struct Failure<'a> {
    pub metric: &'a str,
    /// The condition the value broke: its successCondition, or the failureCondition it met.
    pub condition: &'a str,
    pub failure_condition: bool,
    pub failed: i32,
    pub failure_limit: i32,
}

/// The measurement that failed `run` (its last failed one).
pub fn failed_measurement(run: &AnalysisRun) -> Result<Measurement> {
    measurements(run)
        .into_iter()
        .rev()
        .find(|m| m.phase == AnalysisPhase::Failed)
        .with_context(|| format!("run {} has no failed measurement: {:?}", run.name_any(), run.status))
}

/// Waits for the automatic abort that the failed `run` causes, and checks it: `status.abort`,
/// phase Degraded, a Progressing condition `RolloutAborted` whose message names the metric, the
/// value and the condition it broke, and the counts.
pub async fn expect_abort(
    ns: &TestNamespace,
    rollout: &str,
    run: &AnalysisRun,
    failure: &Failure<'_>,
) -> Result<Rollout> {
    let aborted = ns
        .wait_for::<Rollout>(rollout, "an automatic abort", TIMEOUT, |r| {
            status(r).abort == Some(true) && phase(r) == "Degraded"
        })
        .await?;
    let conditions = status(&aborted).conditions.unwrap_or_default();
    let progressing = conditions.iter().find(|c| c.type_ == "Progressing").context("no Progressing condition")?;
    ensure!(progressing.reason == "RolloutAborted", "{progressing:?}");
    let message = &progressing.message;
    let value = failed_measurement(run)?.value.unwrap_or_default();
    let named = format!("metric \"{}\" failed: ", failure.metric);
    let (_, said) = message.split_once(&named).with_context(|| format!("{named:?} is not in {message:?}"))?;
    // In this order: the value, whether it satisfies, the condition.
    let verb = if failure.failure_condition { " satisfies " } else { " does not satisfy " };
    let (before, after) = said.split_once(verb).with_context(|| format!("{verb:?} is not in {message:?}"))?;
    let bare = value.trim_start_matches('[').trim_end_matches(']');
    ensure!(before.contains(bare) && !bare.is_empty(), "the value {value} is not in {message:?}");
    ensure!(after.contains(failure.condition), "{:?} is not in {message:?}", failure.condition);
    let counts = [format!("({} failure", failure.failed), format!("> failureLimit {})", failure.failure_limit)];
    ensure!(counts.iter().all(|c| message.contains(c.as_str())), "the counts {counts:?} are not in {message:?}");
    Ok(aborted)
}

/// Waits for an Event on Rollout `rollout` with `reason`, of `kind` (Normal/Warning), saying `note`.
pub async fn wait_rollout_event(ns: &TestNamespace, rollout: &str, reason: &str, kind: &str, note: &str) -> Result<()> {
    let seen = e2e::poll_until(TIMEOUT, || async {
        let events = ns.api::<Event>().list(&ListParams::default()).await?.items;
        Ok(events
            .iter()
            .any(|e| {
                let regarding = e.regarding.as_ref();
                regarding.and_then(|r| r.kind.as_deref()) == Some("Rollout")
                    && regarding.and_then(|r| r.name.as_deref()) == Some(rollout)
                    && e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some(kind)
                    && e.note.as_deref() == Some(note)
            })
            .then_some(()))
    })
    .await;
    match seen {
        Ok(()) => Ok(()),
        Err(error) => {
            Err(error
                .context(format!("no {kind} Event {reason} \"{note}\" on rollout {rollout}\n{}", ns.describe().await)))
        }
    }
}

/// The Event a run's failure makes on its Rollout: `Step` or `Background`, and the phase the
/// Rollout saw before (`Running`; `Pending` for a run that failed at its one measurement).
pub async fn wait_failed_run_event(
    ns: &TestNamespace,
    rollout: &str,
    kind: &str,
    run: &str,
    before: &str,
) -> Result<()> {
    let note = format!("{kind} Analysis Run '{run}' Status New: 'Failed' Previous: '{before}'");
    wait_rollout_event(ns, rollout, "AnalysisRunFailed", "Warning", &note).await
}

/// An update that a failed run must abort and roll back.
pub struct Aborting<'a> {
    pub rollout: &'a str,
    pub routing: Routing,
    /// The stable and the canary's pod-template hashes; the canary is revision 2.
    pub stable: &'a str,
    pub canary: &'a str,
    /// The run that fails: a step's (its index), or the background one.
    pub step: Option<usize>,
    /// Its phase before it failed, as the Rollout saw it (see [`wait_failed_run_event`]).
    pub failed_from: &'a str,
    pub failure: Failure<'a>,
}

impl Aborting<'_> {
    /// Waits for the run to fail, and checks what follows: the abort and what it says, the run's
    /// identity, the Rollout's Event, all traffic back on the stable pods, and the canary scaled
    /// down. Returns the failed run and the traffic once back.
    pub async fn rolled_back(&self, ns: &TestNamespace) -> Result<(AnalysisRun, TrafficState)> {
        let name = run_name(self.rollout, self.canary, 2, self.step);
        let failed = completed(ns, &name).await?;
        ensure!(run_phase(&failed) == AnalysisPhase::Failed, "{name}: {:?}", failed.status);
        let aborted = expect_abort(ns, self.rollout, &failed, &self.failure).await?;
        check_run_identity(&failed, &aborted, self.canary, self.step)?;
        let kind = if self.step.is_some() { "Step" } else { "Background" };
        wait_failed_run_event(ns, self.rollout, kind, &name, self.failed_from).await?;
        let back =
            ns.wait_traffic(&self.routing, "all traffic back on the stable pods", |s| s.all_on(self.stable)).await?;
        ns.wait_pods(self.canary, 0).await?;
        let stable = status(&ns.rollout(self.rollout).await?).stable_rs;
        ensure!(stable.as_deref() == Some(self.stable), "the stable changed to {stable:?}");
        Ok((failed, back))
    }
}
