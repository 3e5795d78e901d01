//! Support for end-to-end tests against a real Kubernetes control plane.
//!
//! The cluster comes from `KUBECONFIG`, or from `target/cluster/kubeconfig` that `make
//! cluster-up` writes. A test that can't reach it fails: e2e tests never skip themselves.
//! Each test gets its own labelled namespace, deleted when the test ends.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::{Client, Config, Resource, ResourceExt, discovery};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod argocd;
pub mod controller;
pub mod fixtures;
pub mod pods;
pub mod process;
pub mod prometheus;
pub mod rollouts;
pub mod traffic;
pub mod web;

/// Label on every namespace a test creates, so leftovers are easy to find and delete.
pub const TEST_NAMESPACE_LABEL: &str = "rollouts-e2e";
/// How long a wait lasts unless a test says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The kubeconfig of the e2e cluster: `KUBECONFIG`, else the harness's.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("KUBECONFIG").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target/cluster/kubeconfig"))
}

async fn config_from(path: &Path) -> Result<Config> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {} (start the cluster with `make cluster-up`)", path.display()))?;
    Ok(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

/// A client authenticated by the kubeconfig at `path`.
pub async fn client_from(path: &Path) -> Result<Client> {
    Ok(Client::try_from(config_from(path).await?)?)
}

/// The admin connection settings of the e2e cluster.
pub async fn admin_config() -> Result<Config> {
    config_from(&kubeconfig_path()).await
}

/// An admin client for the e2e cluster. Fails, with what to do, when the cluster is unreachable.
pub async fn admin_client() -> Result<Client> {
    let path = kubeconfig_path();
    let client = client_from(&path).await?;
    client.apiserver_version().await.with_context(|| {
        format!("the e2e cluster at {} is unreachable: run `make cluster-up` (or `make test`)", path.display())
    })?;
    Ok(client)
}

/// The RBAC test users that `tests/cluster/up.sh` creates with static tokens.
#[derive(Clone, Copy, Debug)]
pub enum User {
    Reader,
    Writer,
    Nobody,
}

impl User {
    pub fn name(self) -> &'static str {
        match self {
            User::Reader => "rollouts-reader",
            User::Writer => "rollouts-writer",
            User::Nobody => "nobody",
        }
    }

    /// The kubeconfig that authenticates as this user.
    pub fn kubeconfig(self) -> PathBuf {
        let dir = std::env::var_os("ROLLOUTS_E2E_USERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/cluster/users"));
        dir.join(format!("{}.kubeconfig", self.name()))
    }

    pub async fn client(self) -> Result<Client> {
        client_from(&self.kubeconfig()).await
    }
}

/// One test's namespace on the e2e cluster. Dropping it deletes the namespace.
pub struct TestNamespace {
    pub client: Client,
    pub name: String,
    /// Whether dropping this handle deletes the namespace.
    owned: bool,
}

impl TestNamespace {
    /// Another handle on an existing test namespace (e.g. for a background task); dropping it
    /// leaves the namespace alone.
    pub fn attach(client: Client, name: String) -> Self {
        TestNamespace { client, name, owned: false }
    }

    /// Creates a fresh namespace named after the test.
    pub async fn new(test: &str) -> Result<Self> {
        Self::with_labels(test, &[]).await
    }

    /// Creates a fresh namespace with extra labels (e.g. Pod Security enforcement).
    pub async fn with_labels(test: &str, labels: &[(&str, &str)]) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let client = admin_client().await?;
        let suffix = (std::process::id() % 10_000) * 100 + COUNTER.fetch_add(1, Ordering::Relaxed) % 100;
        let name = format!("{}-{suffix}", test.replace('_', "-")).chars().take(63).collect::<String>();
        let mut all_labels = serde_json::Map::new();
        all_labels.insert(TEST_NAMESPACE_LABEL.into(), "true".into());
        for (key, value) in labels {
            all_labels.insert((*key).into(), (*value).into());
        }
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": all_labels }
        }))?;
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await?;
        Ok(TestNamespace { client, name, owned: true })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Server-side applies every document of `yaml` into this namespace.
    pub async fn apply(&self, yaml: &str) -> Result<()> {
        apply_yaml(&self.client, Some(&self.name), yaml).await
    }

    /// Server-side applies a typed object into this namespace.
    pub async fn apply_object<K>(&self, object: &K) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let name = object.meta().name.clone().context("object has no name")?;
        let params = PatchParams::apply("e2e").force();
        Ok(self.api::<K>().patch(&name, &params, &Patch::Apply(object)).await?)
    }

    /// Polls `name` until `done` holds, or fails after `timeout`, printing the object and what the
    /// namespace holds.
    pub async fn wait_for<K>(&self, name: &str, what: &str, timeout: Duration, done: impl Fn(&K) -> bool) -> Result<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let api = self.api::<K>();
        let result = poll_until(timeout, || async {
            let object = api.get_opt(name).await?;
            Ok(object.filter(|object| done(object)))
        })
        .await;
        match result {
            Ok(object) => Ok(object),
            Err(error) => {
                let last = api.get_opt(name).await.ok().flatten();
                let last = last.map(|o| to_yaml(&o)).unwrap_or_else(|| "<not found>".into());
                let state = self.describe().await;
                bail!("timed out after {timeout:?} waiting for {what} ({error})\n--- {name}:\n{last}\n{state}")
            }
        }
    }

    /// A summary of ReplicaSets, pods and recent events, for failure messages.
    pub async fn describe(&self) -> String {
        let mut out = String::new();
        if let Ok(list) = self.api::<ReplicaSet>().list(&ListParams::default()).await {
            out.push_str("--- replicasets (name spec/ready/available):\n");
            for rs in list {
                let status = rs.status.clone().unwrap_or_default();
                let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                out.push_str(&format!(
                    "  {} {spec}/{}/{} annotations={:?}\n",
                    rs.name_any(),
                    status.ready_replicas.unwrap_or(0),
                    status.available_replicas.unwrap_or(0),
                    rs.annotations()
                ));
            }
        }
        if let Ok(list) = self.api::<Pod>().list(&ListParams::default()).await {
            out.push_str("--- pods (name phase):\n");
            for pod in list {
                let phase = pod.status.and_then(|s| s.phase).unwrap_or_default();
                out.push_str(&format!(
                    "  {} {phase} {:?}\n",
                    pod.metadata.name.unwrap_or_default(),
                    pod.metadata.labels
                ));
            }
        }
        if let Ok(list) = self.api::<Event>().list(&ListParams::default()).await {
            out.push_str("--- events:\n");
            for event in list.items.iter().rev().take(30).rev() {
                out.push_str(&format!(
                    "  {} {}: {}\n",
                    event.involved_object.name.clone().unwrap_or_default(),
                    event.reason.clone().unwrap_or_default(),
                    event.message.clone().unwrap_or_default()
                ));
            }
        }
        out
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if std::env::var_os("ROLLOUTS_E2E_KEEP").is_some() {
            eprintln!("keeping namespace {} (ROLLOUTS_E2E_KEEP is set)", self.name);
            return;
        }
        // Drop can't await, and the test's runtime may be shutting down: use a runtime of our own.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let client = admin_client().await?;
                Api::<Namespace>::all(client.clone()).delete(&name, &DeleteParams::background()).await?;
                // The test's controller is gone, so nobody would remove the Rollouts' finalizers.
                let rollouts: Api<rollouts_controller::api::Rollout> = Api::namespaced(client, &name);
                let no_finalizers = serde_json::json!({"metadata": {"finalizers": null}});
                for rollout in rollouts.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                    let _ = rollouts
                        .patch(&rollout.name_any(), &PatchParams::default(), &Patch::Merge(&no_finalizers))
                        .await;
                }
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(error)) = deleted {
            eprintln!("could not delete namespace {}: {error:#}", self.name);
        }
    }
}

/// Calls `check` every 200 ms until it returns `Some`, or fails after `timeout` with the last error.
pub async fn poll_until<T, F, Fut>(timeout: Duration, check: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(error) => error.context("condition not met"),
                None => anyhow!("condition not met"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Server-side applies every document of `yaml`; namespaced kinds go into `namespace` when given.
pub async fn apply_yaml(client: &Client, namespace: Option<&str>, yaml: &str) -> Result<()> {
    let documents: Vec<Option<DynamicObject>> = serde_saphyr::from_multiple(yaml)?;
    for object in documents.into_iter().flatten() {
        let types = object.types.clone().context("a document has no apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, capabilities) = discovery::pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match (capabilities.scope, namespace) {
            (discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (discovery::Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
            (discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        let name = object.name_any();
        let params = PatchParams::apply("e2e").force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
    }
    Ok(())
}

/// Reads a file of the repository, e.g. `examples/istio-canary.yaml`.
pub fn read_repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|error| format!("<unprintable: {error}>"))
}

/// The versions pinned in `tests/cluster/versions.env` (`K8S_VERSION`, `ETCD_VERSION`, ...).
pub fn pinned_versions() -> Result<BTreeMap<String, String>> {
    let path = repo_root().join("tests/cluster/versions.env");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().trim_matches('"').to_string()))
        .collect())
}

/// Where `make cluster-build` caches what it builds: `$ROLLOUTS_TESTBIN`, default
/// `~/.cache/rollouts-testbin`, as in `tests/cluster/lib.sh`.
fn testbin_root() -> Result<PathBuf> {
    Ok(match std::env::var_os("ROLLOUTS_TESTBIN") {
        Some(root) => PathBuf::from(root),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/rollouts-testbin"),
    })
}

/// One version pinned in `tests/cluster/versions.env`.
fn pinned_version(key: &str) -> Result<String> {
    pinned_versions()?.remove(key).with_context(|| format!("versions.env has no {key}"))
}

/// Where `make cluster-build` puts the control plane: `<testbin root>/k8s-<K8S>-etcd-<ETCD>-kwok-<KWOK>`.
pub fn testbin_dir() -> Result<PathBuf> {
    Ok(testbin_root()?.join(format!(
        "k8s-{}-etcd-{}-kwok-{}",
        pinned_version("K8S_VERSION")?,
        pinned_version("ETCD_VERSION")?,
        pinned_version("KWOK_VERSION")?
    )))
}

/// Where `make cluster-build` puts `prometheus` and `promtool`: `<testbin root>/prometheus-<PROMETHEUS>`.
pub fn prometheus_bin_dir() -> Result<PathBuf> {
    Ok(testbin_root()?.join(format!("prometheus-{}", pinned_version("PROMETHEUS_VERSION")?)))
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct KubectlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the pinned kubectl as the cluster admin (the e2e kubeconfig) with `args`, feeding it
/// `stdin` when given (for `-f -`). Fails only when kubectl can't be started; see [`kubectl_ok`].
pub async fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<KubectlOutput> {
    let binary = testbin_dir()?.join("kubectl");
    if !binary.is_file() {
        bail!("{} is missing: run `make cluster-build`", binary.display());
    }
    let mut command = std::process::Command::new(&binary);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.map(str::to_owned);
    // A blocking child process on a blocking thread: it keeps the test's runtime free.
    let output = tokio::task::spawn_blocking(move || -> Result<std::process::Output> {
        let mut child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let writer = match (input, child.stdin.take()) {
            (Some(input), Some(mut pipe)) => Some(std::thread::spawn(move || {
                use std::io::Write;
                // Dropping the pipe afterwards closes it: kubectl then sees the end of its input.
                pipe.write_all(input.as_bytes())
            })),
            _ => None,
        };
        let output = child.wait_with_output()?;
        if let Some(writer) = writer {
            writer.join().map_err(|_| anyhow!("writing kubectl's stdin panicked"))??;
        }
        Ok(output)
    })
    .await??;
    Ok(KubectlOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// [`kubectl`] that fails, with everything kubectl printed, unless it exits with 0.
pub async fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> Result<KubectlOutput> {
    let output = kubectl(args, stdin).await?;
    if !output.success {
        bail!("kubectl {} failed:\n{}{}", args.join(" "), output.stdout, output.stderr);
    }
    Ok(output)
}
