//! `make bench`: memory, latency and API cost of the controller at scale, on the local cluster.
//!
//! N Rollouts (default 1000), each with a workloadRef Deployment of 2 replicas, stable and canary
//! Services and a VirtualService, steps setWeight 20 / pause 10s / setWeight 50 / pause 10s /
//! setWeight 100. The controller runs as a separate (release) process; the phases are create,
//! idle, roll, restart, and analysis (as many AnalysisRuns as Rollouts, against a real
//! Prometheus; `analysis.rs`). Figures are printed and written to target/bench/results.{md,json};
//! missed targets are listed, but they don't fail the run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::process::http_get;
use e2e::{admin_client, admin_config, apply_yaml, repo_root};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rollouts_controller::api::{POD_TEMPLATE_HASH_LABEL, Rollout};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

mod analysis;

const NAMESPACE: &str = "bench";
const PAUSE: Duration = Duration::from_secs(10);
/// A VirtualService no Rollout uses: the bench writes it through the roll to see how long any
/// client's write takes to show on a watch while the cluster is that busy.
const PROBE: &str = "probe";
const PROBE_ANNOTATION: &str = "bench.rollouts/probe";
const PROBE_EVERY: Duration = Duration::from_millis(250);

struct Args {
    rollouts: usize,
    idle: Duration,
    settle_seconds: u64,
    binary: PathBuf,
    analysis_runs: Option<usize>,
    analysis_window: Duration,
}

fn args() -> Result<Args> {
    let mut parsed = Args {
        rollouts: 1000,
        idle: Duration::from_secs(300),
        settle_seconds: 2,
        binary: repo_root().join("target/release/rollouts-controller"),
        analysis_runs: None,
        analysis_window: Duration::from_secs(60),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rollouts" => parsed.rollouts = value.parse()?,
            "--idle-seconds" => parsed.idle = Duration::from_secs(value.parse()?),
            "--settle-seconds" => parsed.settle_seconds = value.parse()?,
            "--controller" => parsed.binary = value.into(),
            "--analysis-runs" => parsed.analysis_runs = Some(value.parse()?),
            "--analysis-seconds" => parsed.analysis_window = Duration::from_secs(value.parse()?),
            other => bail!(
                "unknown flag {other}; use --rollouts N --idle-seconds S --settle-seconds S --controller PATH --analysis-runs N --analysis-seconds S"
            ),
        }
    }
    Ok(parsed)
}

fn objects(index: usize) -> String {
    let name = format!("app-{index:04}");
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: "registry.example/app:v1"}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}-stable}}
spec: {{clusterIP: None, selector: {{app: {name}}}, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}-canary}}
spec: {{clusterIP: None, selector: {{app: {name}}}, ports: [{{port: 80}}]}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  http:
  - name: primary
    route:
    - {{destination: {{host: {name}-stable}}, weight: 100}}
    - {{destination: {{host: {name}-canary}}, weight: 0}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 2
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}, scaleDown: onsuccess}}
  strategy:
    canary:
      stableService: {name}-stable
      canaryService: {name}-canary
      trafficRouting: {{istio: {{virtualService: {{name: {name}, routes: [primary]}}}}}}
      steps: [{{setWeight: 20}}, {{pause: {{duration: 10s}}}}, {{setWeight: 50}}, {{pause: {{duration: 10s}}}}, {{setWeight: 100}}]
"#
    )
}

/// Resource use of the controller process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    rss_bytes: u64,
    cpu_seconds: f64,
}

fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let (_, cpu_seconds) = process_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)?;
    Ok(Usage { rss_bytes: rss_kib * 1024, cpu_seconds })
}

/// Command name and CPU seconds (user + system) from a /proc/<pid>/stat line.
fn process_cpu(stat: &str) -> Result<(String, f64)> {
    // The command name is in parentheses and may contain spaces; the fields follow ") ".
    let (head, rest) = stat.rsplit_once(") ").context("odd /proc stat")?;
    let command = head.split_once(" (").context("odd /proc stat")?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok((command, ticks / 100.0))
}

/// CPU seconds of every process on the machine, summed by command name.
fn machine_cpu() -> BTreeMap<String, f64> {
    let mut by_command = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        // Processes come and go while this reads: skip what can't be read.
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
            && let Ok((command, seconds)) = process_cpu(&stat)
        {
            *by_command.entry(command).or_insert(0.0) += seconds;
        }
    }
    by_command
}

/// The processes that used the most CPU between two `machine_cpu` readings, with their shares.
fn cpu_shares(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let mut used: Vec<(&String, f64)> =
        after.iter().map(|(command, seconds)| (command, seconds - before.get(command).unwrap_or(&0.0))).collect();
    let total: f64 = used.iter().map(|(_, seconds)| seconds.max(0.0)).sum();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = used
        .iter()
        .take(6)
        .map(|(command, seconds)| format!("{command} {seconds:.0} s ({:.0}%)", 100.0 * seconds / total))
        .collect();
    format!("{} of {total:.0} s", top.join(", "))
}

/// The controller process and a sampler of its memory.
struct Controller {
    child: Child,
    admin: std::net::SocketAddr,
    peak_rss: Arc<Mutex<u64>>,
    samples: Arc<Mutex<Vec<u64>>>,
}

impl Controller {
    async fn start(args: &Args, kubeconfig: &std::path::Path) -> Result<(Controller, Duration)> {
        let admin = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(repo_root().join("target/bench/controller.log"))?;
        let started = Instant::now();
        let child = Command::new(&args.binary)
            .args(["run", "--admin-address", &admin.to_string(), "--settle-seconds", &args.settle_seconds.to_string()])
            // No client-side rate limit: at this scale the default 40/s would set the pace.
            .args(["--qps", "0"])
            .env("ROLLOUTS_KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", args.binary.display()))?;
        loop {
            if matches!(http_get(admin, "/readyz").await, Ok((200, _))) {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("the controller was not ready after 120 s; see target/bench/controller.log");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ready_after = started.elapsed();
        let pid = child.id().context("controller exited")?;
        let peak_rss = Arc::new(Mutex::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (peak, all) = (peak_rss.clone(), samples.clone());
        tokio::spawn(async move {
            while let Ok(now) = usage(pid) {
                {
                    let mut peak = peak.lock().expect("sampler lock");
                    *peak = (*peak).max(now.rss_bytes);
                }
                all.lock().expect("sampler lock").push(now.rss_bytes);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Ok((Controller { child, admin, peak_rss, samples }, ready_after))
    }

    fn usage(&self) -> Result<Usage> {
        usage(self.child.id().context("controller exited")?)
    }

    /// Resets the peak and the samples, for a new phase.
    fn new_phase(&self) {
        *self.peak_rss.lock().expect("sampler lock") = 0;
        self.samples.lock().expect("sampler lock").clear();
    }

    fn peak(&self) -> u64 {
        *self.peak_rss.lock().expect("sampler lock")
    }

    fn median(&self) -> u64 {
        let mut samples = self.samples.lock().expect("sampler lock").clone();
        samples.sort_unstable();
        samples.get(samples.len() / 2).copied().unwrap_or(0)
    }

    /// Keeps everything the controller measured (its histograms too), for a closer look.
    async fn save_metrics(&self, phase: &str) -> Result<()> {
        let (_, text) = http_get(self.admin, "/metrics").await?;
        Ok(std::fs::write(repo_root().join(format!("target/bench/metrics-{phase}.txt")), text)?)
    }

    /// The controller's counters: API requests by verb, and writes.
    async fn requests(&self) -> Result<BTreeMap<String, f64>> {
        self.requests_by(&["verb"]).await
    }

    /// API requests by verb and resource, e.g. `patch analysisruns`.
    async fn requests_by_resource(&self) -> Result<BTreeMap<String, f64>> {
        self.requests_by(&["verb", "resource"]).await
    }

    async fn requests_by(&self, labels: &[&str]) -> Result<BTreeMap<String, f64>> {
        let (_, text) = http_get(self.admin, "/metrics").await?;
        let mut counts = BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with("rollouts_controller_api_requests_total{")) {
            let label = |name: &str| {
                line.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap_or("?").to_string()
            };
            let key = labels.iter().map(|name| label(name)).collect::<Vec<_>>().join(" ");
            let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *counts.entry(key).or_insert(0.0) += value;
        }
        Ok(counts)
    }
}

/// The apiserver's own histogram of the time it took to serve PATCHes of `resource`: each bucket's
/// upper bound in seconds and how many requests so far fell under it, summed over other labels.
async fn apiserver_patch_histogram(client: &Client, resource: &str) -> Result<Vec<(f64, f64)>> {
    let text = client.request_text(http::Request::get("/metrics").body(Vec::new())?).await?;
    let wanted = [format!("resource=\"{resource}\","), "verb=\"PATCH\",".to_string()];
    let mut buckets: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_duration_seconds_bucket{")) {
        if wanted.iter().all(|label| line.contains(label.as_str())) {
            let bound = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("+Inf");
            let count: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *buckets.entry(bound.to_string()).or_default() += count;
        }
    }
    let mut histogram: Vec<(f64, f64)> =
        buckets.into_iter().map(|(bound, count)| (bound.parse().unwrap_or(f64::INFINITY), count)).collect();
    histogram.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(histogram)
}

/// Between two snapshots of an apiserver histogram: how many requests, and the bucket bounds
/// under which half and 99% of them fell.
fn apiserver_latency(before: &[(f64, f64)], after: &[(f64, f64)]) -> String {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, count)| {
            let earlier = before.iter().find(|(b, _)| b == bound).map_or(0.0, |(_, c)| *c);
            (*bound, count - earlier)
        })
        .collect();
    let total = counts.last().map_or(0.0, |(_, count)| *count);
    let bound =
        |share: f64| counts.iter().find(|(_, count)| *count >= share * total).map_or(f64::NAN, |(bound, _)| *bound);
    format!("{total:.0} PATCHes; p50 ≤ {} s, p99 ≤ {} s", bound(0.5), bound(0.99))
}

fn writes(requests: &BTreeMap<String, f64>) -> f64 {
    ["create", "update", "patch", "delete"].iter().map(|verb| requests.get(*verb).copied().unwrap_or(0.0)).sum()
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after.iter().map(|(verb, value)| (verb.clone(), value - before.get(verb).copied().unwrap_or(0.0))).collect()
}

async fn stable_hashes(client: &Client) -> Result<HashMap<String, String>> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NAMESPACE);
    let list = rollouts.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|r| (r.name_any(), r.status.as_ref().and_then(|s| s.stable_rs.clone()).unwrap_or_default()))
        .collect())
}

/// Waits until the controller has written nothing for 5 s (at most 120 s).
async fn wait_quiet(controller: &Controller) -> Result<()> {
    let started = Instant::now();
    let mut last = writes(&controller.requests().await?);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) && started.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = writes(&controller.requests().await?);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    Ok(())
}

/// Waits until each Rollout runs only its stable ReplicaSet (at most 120 s); returns how long.
async fn wait_old_scaled_down(client: &Client, count: usize) -> Result<Duration> {
    let started = Instant::now();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    while started.elapsed() < Duration::from_secs(120) {
        let list = replica_sets.list(&ListParams::default().labels(POD_TEMPLATE_HASH_LABEL)).await?;
        let running = list.items.iter().filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0).count();
        if running == count {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(started.elapsed())
}

/// How long a phase may take to bring every Rollout to Healthy.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(1800);

/// Waits until all `count` Rollouts are Healthy (create phase: polls a list).
async fn wait_all_healthy(client: &Client, count: usize) -> Result<()> {
    let started = Instant::now();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        let list = rollouts.list(&ListParams::default()).await?;
        let done =
            list.items.iter().filter(|r| r.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Healthy")).count();
        if done == count {
            return Ok(());
        }
        if started.elapsed() > HEALTHY_TIMEOUT {
            bail!("only {done} of {count} Rollouts were Healthy after {HEALTHY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the roll's observer has seen all `count` Rollouts Healthy on their new revision.
/// It reads the observer's watch rather than listing: a list of every Rollout twice a second
/// was a tenth of the apiserver's CPU in the phase whose latencies are measured.
async fn wait_roll_healthy(times: &Mutex<RollTimes>, count: usize) -> Result<()> {
    let started = Instant::now();
    loop {
        let done = times.lock().expect("observer lock").healthy.len();
        if done == count {
            return Ok(());
        }
        if started.elapsed() > HEALTHY_TIMEOUT {
            bail!("only {done} of {count} Rollouts were Healthy on the new revision after {HEALTHY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Adds kwok nodes with room for the bench's pods (the harness's 3 nodes hold 330).
async fn ensure_capacity(client: &Client, pods: usize) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for index in 0..pods.div_ceil(1000) {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("kwok-bench-{index}"), "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": format!("kwok-bench-{index}")}},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "allocatable": {"cpu": "1000", "memory": "1Ti", "pods": "1000"},
                       "capacity": {"cpu": "1000", "memory": "1Ti", "pods": "1000"}}
        }))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

async fn fresh_namespace(client: &Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(NAMESPACE).await?.is_some() {
        // No controller runs yet: the Rollouts' finalizers must be dropped by hand.
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NAMESPACE);
        let no_finalizers = json!({"metadata": {"finalizers": null}});
        for rollout in rollouts.list(&ListParams::default()).await?.items {
            rollouts.patch(&rollout.name_any(), &PatchParams::default(), &Patch::Merge(&no_finalizers)).await?;
        }
        namespaces.delete(NAMESPACE, &DeleteParams::background()).await?;
        let started = Instant::now();
        while namespaces.get_opt(NAMESPACE).await?.is_some() {
            if started.elapsed() > Duration::from_secs(300) {
                bail!("namespace {NAMESPACE} is still terminating");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?)
        .await?;
    Ok(())
}

/// What the roll phase observed, per Rollout.
#[derive(Default)]
struct RollTimes {
    /// Stable pod-template hash of each Rollout before the roll: Healthy counts only once it changed.
    stable_before: HashMap<String, String>,
    image_changed: HashMap<String, Instant>,
    /// Pause start times (as stored: whole seconds) by step index.
    pause_started: HashMap<(String, i32), Timestamp>,
    /// When each canary weight was first seen on the VirtualService.
    weight_seen: HashMap<(String, i64), Timestamp>,
    healthy: HashMap<String, Instant>,
    /// Per ReplicaSet: when it was last asked for more pods (and how many), while not yet there.
    scaling: HashMap<String, (Timestamp, i32)>,
    /// Per Rollout: total seconds its ReplicaSets took to make asked-for pods available.
    pod_wait: HashMap<String, f64>,
    /// The probe's writes by sequence number: when each was sent, and first seen on the watch.
    probe_sent: HashMap<u64, Timestamp>,
    probe_seen: HashMap<u64, Timestamp>,
}

/// Records pause starts and Healthy times from the Rollouts, and weights from the VirtualServices.
fn observe_roll(client: &Client, times: Arc<Mutex<RollTimes>>) -> tokio::task::JoinHandle<()> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NAMESPACE);
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let vs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &ApiResource::from_gvk(&gvk));
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
    tokio::spawn(async move {
        let rollout_changes = watcher::watcher(rollouts, watcher::Config::default())
            .applied_objects()
            .map_ok(|r| Seen::Rollout(Box::new(r)))
            .boxed();
        let vs_changes = watcher::watcher(vs, watcher::Config::default())
            .applied_objects()
            .map_ok(|vs| Seen::VirtualService(Box::new(vs)))
            .boxed();
        let rs_changes = watcher::watcher(replica_sets, watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL))
            .applied_objects()
            .map_ok(|rs| Seen::ReplicaSet(Box::new(rs)))
            .boxed();
        let mut changes = stream::select_all([rollout_changes, vs_changes, rs_changes]);
        while let Some(Ok(change)) = changes.next().await {
            let now = Timestamp::now();
            let mut times = times.lock().expect("observer lock");
            match change {
                Seen::Rollout(rollout) => {
                    let name = rollout.name_any();
                    let status = rollout.status.unwrap_or_default();
                    if let (Some(index), Some(pause)) =
                        (status.current_step_index, status.pause_conditions.as_ref().and_then(|p| p.first()))
                    {
                        times.pause_started.entry((name.clone(), index)).or_insert(pause.start_time.0);
                    }
                    let new_stable =
                        status.stable_rs.is_some() && status.stable_rs.as_ref() != times.stable_before.get(&name);
                    if status.phase.as_deref() == Some("Healthy")
                        && new_stable
                        && times.image_changed.contains_key(&name)
                    {
                        times.healthy.entry(name).or_insert_with(Instant::now);
                    }
                }
                Seen::VirtualService(vs) if vs.name_any() == PROBE => {
                    if let Some(sequence) = vs.annotations().get(PROBE_ANNOTATION).and_then(|v| v.parse().ok()) {
                        times.probe_seen.entry(sequence).or_insert(now);
                    }
                }
                Seen::VirtualService(vs) => {
                    let weight = vs.data.pointer("/spec/http/0/route/1/weight").and_then(Value::as_i64).unwrap_or(0);
                    times.weight_seen.entry((vs.name_any(), weight)).or_insert(now);
                }
                Seen::ReplicaSet(rs) => {
                    let name = rs.name_any();
                    let wanted = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
                    let owner = rs.owner_references().first().map(|o| o.name.clone()).unwrap_or_default();
                    match times.scaling.get(&name).copied() {
                        Some((asked, pods)) if available >= pods || wanted < pods => {
                            times.scaling.remove(&name);
                            if available >= pods {
                                *times.pod_wait.entry(owner).or_default() += now.duration_since(asked).as_secs_f64();
                            }
                        }
                        None if wanted > available => {
                            times.scaling.insert(name, (now, wanted));
                        }
                        _ => {}
                    }
                }
            }
        }
    })
}

/// Writes the probe VirtualService every `PROBE_EVERY`, one write at a time, until aborted.
fn probe_writes(client: &Client, times: Arc<Mutex<RollTimes>>) -> tokio::task::JoinHandle<()> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let vs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &ApiResource::from_gvk(&gvk));
    tokio::spawn(async move {
        for sequence in 1u64.. {
            times.lock().expect("observer lock").probe_sent.insert(sequence, Timestamp::now());
            let patch = json!({"metadata": {"annotations": {PROBE_ANNOTATION: sequence.to_string()}}});
            if let Err(error) = vs.patch(PROBE, &PatchParams::default(), &Patch::Merge(&patch)).await {
                eprintln!("bench: probe write {sequence} failed: {error}");
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    })
}

fn probe_latencies(times: &RollTimes) -> Vec<f64> {
    times
        .probe_sent
        .iter()
        .filter_map(|(sequence, sent)| Some(times.probe_seen.get(sequence)?.duration_since(*sent).as_secs_f64()))
        .collect()
}

enum Seen {
    Rollout(Box<Rollout>),
    VirtualService(Box<DynamicObject>),
    ReplicaSet(Box<ReplicaSet>),
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    values
}

/// Seconds from each pause (at `pause_index`) expiring to the next weight on the VirtualService.
fn pause_latencies(times: &RollTimes, pause_index: i32, next_weight: i64) -> Vec<f64> {
    times
        .pause_started
        .iter()
        .filter(|((_, index), _)| *index == pause_index)
        .filter_map(|((name, _), started)| {
            let expiry = *started + PAUSE;
            let written = times.weight_seen.get(&(name.clone(), next_weight))?;
            Some(written.duration_since(expiry).as_secs_f64())
        })
        .collect()
}

struct Row {
    metric: String,
    value: String,
    target: String,
    met: Option<bool>,
}

fn row(metric: &str, value: String, target: &str, met: Option<bool>) -> Row {
    Row { metric: metric.into(), value, target: target.into(), met }
}

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    std::fs::create_dir_all(repo_root().join("target/bench"))?;
    let client = admin_client().await?;
    let kubeconfig = e2e::kubeconfig_path();
    let _ = admin_config().await?;
    let n = args.rollouts;
    println!(
        "bench: {n} Rollouts, idle {:?}, settle {} s, controller {}",
        args.idle,
        args.settle_seconds,
        args.binary.display()
    );
    ensure_capacity(&client, n * 5).await?;
    fresh_namespace(&client).await?;

    let (mut controller, first_ready) = Controller::start(&args, &kubeconfig).await?;
    println!("bench: controller ready after {first_ready:?}");

    // ---- create ----
    controller.new_phase();
    let (usage_before, requests_before) = (controller.usage()?, controller.requests().await?);
    let create_started = Instant::now();
    stream::iter(0..n)
        .map(|index| {
            let client = client.clone();
            async move { apply_yaml(&client, Some(NAMESPACE), &objects(index)).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    println!("bench: created {n} × 5 objects in {:?}", create_started.elapsed());
    wait_all_healthy(&client, n).await?;
    let create_took = create_started.elapsed();
    let create_cpu = controller.usage()?.cpu_seconds - usage_before.cpu_seconds;
    let create_requests = delta(&controller.requests().await?, &requests_before);
    let create_peak = controller.peak();
    println!("bench: all Healthy after {create_took:?}");

    // ---- idle ----
    // The last Events of the create phase may still be on their way.
    wait_quiet(&controller).await?;
    controller.new_phase();
    let (usage_before, requests_before) = (controller.usage()?, controller.requests().await?);
    tokio::time::sleep(args.idle).await;
    let idle_cpu = controller.usage()?.cpu_seconds - usage_before.cpu_seconds;
    let idle_requests = delta(&controller.requests().await?, &requests_before);
    let steady_rss = controller.median();
    println!("bench: idle for {:?}: {:.2} CPU s, {} writes", args.idle, idle_cpu, writes(&idle_requests));

    // ---- roll ----
    controller.new_phase();
    let (usage_before, requests_before) = (controller.usage()?, controller.requests().await?);
    let vs_patches_before = apiserver_patch_histogram(&client, "virtualservices").await?;
    let stable_before = stable_hashes(&client).await?;
    let times = Arc::new(Mutex::new(RollTimes { stable_before, ..Default::default() }));
    let probe = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {PROBE}}}\n\
         spec: {{hosts: [{PROBE}], http: [{{route: [{{destination: {{host: {PROBE}}}, weight: 100}}]}}]}}\n"
    );
    apply_yaml(&client, Some(NAMESPACE), &probe).await?;
    let observer = observe_roll(&client, times.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let prober = probe_writes(&client, times.clone());
    let roll_started = Instant::now();
    let machine_before = machine_cpu();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let image =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:v2"}]}}}});
    let changed: Vec<(String, Instant)> = stream::iter(0..n)
        .map(|index| {
            let (deployments, image) = (deployments.clone(), image.clone());
            async move {
                let name = format!("app-{index:04}");
                deployments.patch(&name, &PatchParams::default(), &Patch::Strategic(&image)).await?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    times.lock().expect("observer lock").image_changed.extend(changed);
    println!("bench: changed {n} images in {:?}", roll_started.elapsed());
    wait_roll_healthy(&times, n).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let roll_took = roll_started.elapsed();
    let roll_cpu = controller.usage()?.cpu_seconds - usage_before.cpu_seconds;
    let roll_machine_cpu = cpu_shares(&machine_before, &machine_cpu());
    let roll_requests = delta(&controller.requests().await?, &requests_before);
    let roll_peak = controller.peak();
    controller.save_metrics("roll").await?;
    let vs_patch_latency =
        apiserver_latency(&vs_patches_before, &apiserver_patch_histogram(&client, "virtualservices").await?);
    prober.abort();
    observer.abort();
    println!("bench: all Healthy again after {roll_took:?}");

    // Nothing can be faster than the two pauses, the two settle gaps at promotion, and the time
    // the cluster took to start the canary's pods (measured per Rollout).
    let fixed = 2.0 * PAUSE.as_secs_f64() + 2.0 * args.settle_seconds as f64;
    let (first_pause, second_pause, to_healthy, floors, over_floor, to_first_weight, probe_latency) = {
        let times = times.lock().expect("observer lock");
        let to_first_weight = times
            .image_changed
            .iter()
            .filter_map(|(name, changed)| {
                let seen = times.weight_seen.get(&(name.clone(), 20))?;
                let since_change =
                    changed.elapsed().as_secs_f64() - Timestamp::now().duration_since(*seen).as_secs_f64();
                Some(since_change)
            })
            .collect();
        let mut to_healthy = Vec::new();
        let mut floors = Vec::new();
        let mut over_floor = Vec::new();
        for (name, healthy) in &times.healthy {
            let Some(changed) = times.image_changed.get(name) else { continue };
            let took = healthy.duration_since(*changed).as_secs_f64();
            let floor = fixed + times.pod_wait.get(name).copied().unwrap_or(0.0);
            to_healthy.push(took);
            floors.push(floor);
            over_floor.push(took / floor);
        }
        (
            sorted(pause_latencies(&times, 1, 50)),
            sorted(pause_latencies(&times, 3, 100)),
            sorted(to_healthy),
            sorted(floors),
            sorted(over_floor),
            sorted(to_first_weight),
            sorted(probe_latencies(&times)),
        )
    };

    // ---- restart ----
    // Old ReplicaSets go after their scale-down delay; restart once nothing is left to do.
    let quiet = wait_old_scaled_down(&client, n).await?;
    println!("bench: old ReplicaSets scaled down {quiet:?} after Healthy");
    // Their pods then go, and the Rollouts' statuses follow: a write left for after the restart
    // would be work the controller had not finished, not work the restart made.
    wait_quiet(&controller).await?;
    let stable_before = stable_hashes(&client).await?;
    controller.child.kill().await?;
    let (controller, restart_ready) = Controller::start(&args, &kubeconfig).await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after_restart = controller.requests().await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NAMESPACE);
    let moved_back = rollouts
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|r| {
            let status = r.status.clone().unwrap_or_default();
            status.phase.as_deref() != Some("Healthy") || status.stable_rs.as_ref() != stable_before.get(&r.name_any())
        })
        .count();
    println!("bench: restarted, ready after {restart_ready:?}; {moved_back} Rollouts moved");

    // ---- analysis ----
    let runs = args.analysis_runs.unwrap_or(n);
    let analysis_rows = analysis::phase(&client, &controller, runs, args.analysis_window).await?;

    // ---- binary size ----
    let stripped = repo_root().join("target/bench/rollouts-controller.stripped");
    std::fs::copy(&args.binary, &stripped)?;
    let _ = std::process::Command::new("strip").arg(&stripped).status();
    let binary_size = std::fs::metadata(&stripped)?.len();

    let ms = |v: f64| format!("{:.0} ms", v * 1000.0);
    let lat = |v: &[f64]| {
        if v.is_empty() {
            "no samples".to_string()
        } else {
            format!(
                "p50 {} / p90 {} / p99 {} / max {} ({} samples)",
                ms(percentile(v, 50.0)),
                ms(percentile(v, 90.0)),
                ms(percentile(v, 99.0)),
                ms(percentile(v, 100.0)),
                v.len()
            )
        }
    };
    let verbs = |r: &BTreeMap<String, f64>| {
        r.iter().filter(|(_, v)| **v > 0.0).map(|(k, v)| format!("{k} {v:.0}")).collect::<Vec<_>>().join(", ")
    };
    let idle_writes = writes(&idle_requests);
    let idle_core = idle_cpu / args.idle.as_secs_f64();
    let ratio_p99 = percentile(&over_floor, 99.0);
    let mut rows = vec![
        row("Rollouts", n.to_string(), "", None),
        row(
            "RSS steady (idle median)",
            format!("{:.1} MiB", steady_rss as f64 / MIB),
            "≤ 64 MiB",
            Some(steady_rss as f64 <= 64.0 * MIB),
        ),
        row("RSS peak, create phase", format!("{:.1} MiB", create_peak as f64 / MIB), "", None),
        row(
            "RSS peak, roll phase",
            format!("{:.1} MiB", roll_peak as f64 / MIB),
            "≤ 96 MiB",
            Some(roll_peak as f64 <= 96.0 * MIB),
        ),
        row("CPU, create phase", format!("{create_cpu:.1} s over {:.0} s", create_took.as_secs_f64()), "", None),
        row(
            "CPU, idle phase",
            format!("{idle_cpu:.2} s over {:.0} s ({:.2}% of a core)", args.idle.as_secs_f64(), idle_core * 100.0),
            "< 1% of a core",
            Some(idle_core < 0.01),
        ),
        row("CPU, roll phase", format!("{roll_cpu:.1} s over {:.0} s", roll_took.as_secs_f64()), "", None),
        row("CPU, roll phase, whole machine by process", roll_machine_cpu, "", None),
        row("API requests, create", verbs(&create_requests), "", None),
        row("API requests, idle", verbs(&idle_requests), "", None),
        row("API writes, idle", format!("{idle_writes:.0}"), "0", Some(idle_writes == 0.0)),
        row("API requests, roll", verbs(&roll_requests), "", None),
        row("API requests, 15 s after restart", verbs(&after_restart), "", None),
        row(
            "API writes, 15 s after restart",
            format!("{:.0}", writes(&after_restart)),
            "0",
            Some(writes(&after_restart) == 0.0),
        ),
        row(
            "image change → first weight (20) written: new ReplicaSet, its pod, the canary Service",
            lat(&to_first_weight),
            "",
            None,
        ),
        row(
            "pause 1 expiry → weight 50 written",
            lat(&first_pause),
            "p99 ≤ 250 ms, max ≤ 1 s",
            Some(percentile(&first_pause, 99.0) <= 0.25 && percentile(&first_pause, 100.0) <= 1.0),
        ),
        row(
            "the cluster's floor for the row above: the bench's own VirtualService PATCH, every 250 ms through the roll, until seen on its watch",
            lat(&probe_latency),
            "",
            None,
        ),
        row("the apiserver's time to serve a VirtualService PATCH, roll phase", vs_patch_latency, "", None),
        row("pause 2 expiry → weight 100 written (includes scaling the canary to 2)", lat(&second_pause), "", None),
        row(
            "image change → Healthy",
            format!(
                "p50 {:.1} s / p99 {:.1} s; floor p50 {:.1} s / p99 {:.1} s ({fixed:.0} s of pauses and settles, plus the cluster's pod starts); {} samples",
                percentile(&to_healthy, 50.0),
                percentile(&to_healthy, 99.0),
                percentile(&floors, 50.0),
                percentile(&floors, 99.0),
                to_healthy.len()
            ),
            "",
            None,
        ),
        row(
            "image change → Healthy, over its floor",
            format!(
                "p50 {:.2}× / p99 {:.2}× / max {:.2}×",
                percentile(&over_floor, 50.0),
                ratio_p99,
                percentile(&over_floor, 100.0)
            ),
            "p99 ≤ 1.1×",
            Some(ratio_p99 <= 1.1),
        ),
        row("start → ready (first start, empty cluster)", format!("{:.2} s", first_ready.as_secs_f64()), "", None),
        row(
            "restart → ready (everything Healthy)",
            format!("{:.2} s", restart_ready.as_secs_f64()),
            "≤ 5 s",
            Some(restart_ready <= Duration::from_secs(5)),
        ),
        row("Rollouts moved by the restart", moved_back.to_string(), "0", Some(moved_back == 0)),
        row(
            "release binary, stripped",
            format!("{:.1} MB", binary_size as f64 / 1e6),
            "≤ 30 MB",
            Some(binary_size as f64 <= 30e6),
        ),
    ];
    rows.extend(analysis_rows);
    report(&rows, n)?;
    Ok(())
}

fn report(rows: &[Row], n: usize) -> Result<()> {
    let mut markdown = format!(
        "# rollouts-controller benchmark: {n} Rollouts\n\n| Metric | Value | Target | Met |\n|---|---|---|---|\n"
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        markdown.push_str(&format!("| {} | {} | {} | {met} |\n", r.metric, r.value, r.target));
    }
    let missed: Vec<&Row> = rows.iter().filter(|r| r.met == Some(false)).collect();
    markdown.push_str(&if missed.is_empty() {
        "\nEvery target was met.\n".to_string()
    } else {
        format!("\nMissed targets: {}.\n", missed.iter().map(|r| r.metric.as_str()).collect::<Vec<_>>().join("; "))
    });
    println!("\n{markdown}");
    let json: Vec<Value> =
        rows.iter().map(|r| json!({"metric": r.metric, "value": r.value, "target": r.target, "met": r.met})).collect();
    let dir = repo_root().join("target/bench");
    std::fs::write(dir.join("results.md"), &markdown)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&json!({"rollouts": n, "rows": json}))?)?;
    println!("written to {} and results.json", dir.join("results.md").display());
    Ok(())
}
