//! Connecting to the cluster, and turning API failures into one line a person can act on.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use rollouts_controller::api::{AnalysisRun, POD_TEMPLATE_HASH_LABEL, Rollout, WorkloadKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::family::{Family, Visible, analysis_run_selector};
use crate::suggest::closest;

/// A namespaced object the plugin reads, watches and patches by name (a Rollout, an AnalysisRun).
pub trait Object:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Object for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Plural resource name of `K`, as RBAC rules spell it: `rollouts`, `analysisruns`.
pub fn resource_of<K: Object>() -> String {
    K::plural(&()).into_owned()
}

/// Where to connect: the global flags.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A client and the namespace commands work in.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

/// Reads the kubeconfig (`--kubeconfig`, else KUBECONFIG or ~/.kube/config, else the in-cluster
/// ServiceAccount); the namespace is `-n`, else the context's.
pub async fn connect(target: &Target) -> Result<Cluster> {
    let options = KubeConfigOptions { context: target.context.clone(), ..Default::default() };
    let config = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None if target.context.is_some() => Config::from_kubeconfig(&options).await?,
        None => Config::infer().await.context("no kubeconfig found (set KUBECONFIG or use --kubeconfig)")?,
    };
    let namespace = target.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)?;
    Ok(Cluster { client, namespace })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Create,
    Watch,
    Patch,
    Update,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Create => "create",
            Verb::Watch => "watch",
            Verb::Patch => "patch",
            Verb::Update => "update",
        })
    }
}

/// What a request tried to do, to explain its failure.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub verb: Verb,
    /// Plural resource name, as RBAC rules spell it: `rollouts`, `deployments`.
    pub resource: &'a str,
    pub name: Option<&'a str>,
    /// `None`: all namespaces.
    pub namespace: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn new(verb: Verb, resource: &'a str, name: Option<&'a str>, namespace: Option<&'a str>) -> Self {
        Request { verb, resource, name, namespace }
    }

    fn scope(&self) -> String {
        match self.namespace {
            Some(namespace) => format!("in namespace \"{namespace}\""),
            None => "in all namespaces".to_string(),
        }
    }
}

/// The role that grants `verb` on `resource`, as the plugin's users know them (rbac/roles.yaml).
fn role_hint(verb: Verb, resource: &str) -> String {
    let theirs = matches!(resource, "rollouts" | "analysisruns");
    match verb {
        Verb::Get | Verb::List | Verb::Watch if theirs => "ask for the rollouts-reader role".into(),
        Verb::Patch | Verb::Create if theirs => "ask for the rollouts-writer role".into(),
        _ => format!("ask for a role that allows {verb} on {resource}"),
    }
}

/// The status code of an API error, if the apiserver answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// One line for a failed request.
pub fn explain(error: kube::Error, request: Request<'_>) -> anyhow::Error {
    let Request { verb, resource, name, .. } = request;
    let scope = request.scope();
    match &error {
        kube::Error::Api(status) if status.code == 403 => {
            anyhow!("forbidden: you can't {verb} {resource} {scope}; {}", role_hint(verb, resource))
        }
        kube::Error::Api(status) if status.code == 404 => {
            let kind = resource.trim_end_matches('s');
            match name {
                Some(name) => anyhow!("{kind} \"{name}\" not found {scope}"),
                None => anyhow!("{resource} not found {scope}: {}", status.message),
            }
        }
        kube::Error::Api(status) if status.code == 401 => {
            anyhow!("unauthorized: the cluster did not accept the kubeconfig's credentials")
        }
        kube::Error::Api(status) => anyhow!("{verb} {resource} {scope}: {}", status.message),
        // The apiserver answered with an object of another shape (e.g. written by another tool).
        kube::Error::SerdeError(error) => anyhow!("{verb} {resource} {scope}: unexpected content: {error}"),
        other => anyhow!("cannot reach the cluster: {}", error_chain(other)),
    }
}

/// `a: b: c` from an error and its sources, skipping repeats (hyper nests the same text).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts.iter().any(|known| known.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

/// Runs `attempt` again when it fails with 409 Conflict, a few times.
pub async fn retry_on_conflict<T, F, Fut>(mut attempt: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    const ATTEMPTS: usize = 5;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if status_code(&error) == Some(409) && tries < ATTEMPTS => tries += 1,
            result => return result,
        }
    }
}

impl Cluster {
    pub fn api<K: Object>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn request<'a>(&'a self, verb: Verb, resource: &'a str, name: Option<&'a str>) -> Request<'a> {
        Request::new(verb, resource, name, Some(&self.namespace))
    }

    /// The object `name`; when missing, says so and suggests a similar name.
    pub async fn get<K: Object>(&self, name: &str) -> Result<K> {
        let api = self.api::<K>();
        match api.get(name).await {
            Ok(object) => Ok(object),
            Err(error) if status_code(&error) == Some(404) => {
                let kind = K::kind(&()).to_lowercase();
                let mut message = format!("{kind} \"{name}\" not found in namespace \"{}\"", self.namespace);
                // Listing may be forbidden too: then there is simply no suggestion.
                if let Ok(list) = api.list(&ListParams::default()).await {
                    let names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
                    if let Some(similar) = closest(name, &names) {
                        message.push_str(&format!("; did you mean \"{similar}\"?"));
                    }
                }
                Err(anyhow!(message))
            }
            Err(error) => Err(explain(error, self.request(Verb::Get, &resource_of::<K>(), Some(name)))),
        }
    }

    pub async fn rollout(&self, name: &str) -> Result<Rollout> {
        self.get(name).await
    }

    /// Every `K` in the namespace, or in all namespaces.
    pub async fn list<K: Object>(&self, all_namespaces: bool) -> Result<Vec<K>> {
        let namespace = (!all_namespaces).then_some(self.namespace.as_str());
        let api: Api<K> = match namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        let resource = resource_of::<K>();
        let request = Request::new(Verb::List, &resource, None, namespace);
        Ok(api.list(&ListParams::default()).await.map_err(|error| explain(error, request))?.items)
    }

    /// The rollout's ReplicaSets, pods and AnalysisRuns, as far as the user may list them.
    pub async fn family(&self, rollout: &Rollout) -> Result<Family> {
        let namespace = Some(self.namespace.as_str());
        let replica_sets = list_visible::<ReplicaSet>(&self.client, namespace, "replicasets").await?;
        let pods = list_visible::<Pod>(&self.client, namespace, "pods").await?;
        let runs =
            list_selected::<AnalysisRun>(&self.client, namespace, "analysisruns", &analysis_run_selector(rollout))
                .await?;
        let workload_generation = self.workload_generation(rollout).await;
        Ok(Family { workload_generation, ..Family::of(rollout, replica_sets, pods, runs) })
    }

    /// `metadata.generation` of the Deployment the rollout's workloadRef names; `None` when there
    /// is none, or the user may not read it (the phase then relies on the Rollout alone).
    pub async fn workload_generation(&self, rollout: &Rollout) -> Option<i64> {
        let reference = rollout.spec.workload_ref.as_ref().filter(|r| r.kind == WorkloadKind::Deployment)?;
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get(&reference.name).await.ok()?.metadata.generation
    }
}

/// Objects with the pod-template-hash label in `namespace` (`None`: everywhere), or `Forbidden`.
pub async fn list_visible<K>(client: &Client, namespace: Option<&str>, resource: &str) -> Result<Visible<K>>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + fmt::Debug,
{
    list_selected(client, namespace, resource, POD_TEMPLATE_HASH_LABEL).await
}

/// Objects matching the label `selector` in `namespace` (`None`: everywhere), or `Forbidden`.
async fn list_selected<K>(
    client: &Client,
    namespace: Option<&str>,
    resource: &str,
    selector: &str,
) -> Result<Visible<K>>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => Ok(Visible::Items(list.items)),
        Err(error) if status_code(&error) == Some(403) => Ok(Visible::Forbidden),
        Err(error) => Err(explain(error, Request::new(Verb::List, resource, None, namespace))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: "denied by the apiserver".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn forbidden_names_the_role_to_ask_for() {
        let patch = Request::new(Verb::Patch, "rollouts", Some("web"), Some("ns"));
        assert_eq!(
            explain(api_error(403), patch).to_string(),
            "forbidden: you can't patch rollouts in namespace \"ns\"; ask for the rollouts-writer role"
        );
        let get = Request::new(Verb::Get, "rollouts", Some("web"), Some("ns"));
        assert_eq!(
            explain(api_error(403), get).to_string(),
            "forbidden: you can't get rollouts in namespace \"ns\"; ask for the rollouts-reader role"
        );
        let terminate = Request::new(Verb::Patch, "analysisruns", Some("web-1"), Some("ns"));
        assert!(explain(api_error(403), terminate).to_string().ends_with("ask for the rollouts-writer role"));
        let list_all = Request::new(Verb::List, "rollouts", None, None);
        assert!(explain(api_error(403), list_all).to_string().contains("list rollouts in all namespaces"));
        let update = Request::new(Verb::Update, "deployments", Some("web"), Some("ns"));
        assert!(
            explain(api_error(403), update).to_string().ends_with("ask for a role that allows update on deployments")
        );
    }

    #[test]
    fn other_api_errors_are_one_line() {
        let get = Request::new(Verb::Get, "deployments", Some("web"), Some("ns"));
        assert_eq!(explain(api_error(404), get).to_string(), "deployment \"web\" not found in namespace \"ns\"");
        let patch = Request::new(Verb::Patch, "rollouts", Some("web"), Some("ns"));
        assert_eq!(
            explain(api_error(422), patch).to_string(),
            "patch rollouts in namespace \"ns\": denied by the apiserver"
        );
    }

    #[tokio::test]
    async fn conflicts_are_retried_a_few_times() {
        let mut calls = 0;
        let result: Result<(), kube::Error> = retry_on_conflict(|| {
            calls += 1;
            async { Err(api_error(409)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 5);
        let mut calls = 0;
        let result = retry_on_conflict(|| {
            calls += 1;
            let outcome = if calls < 3 { Err(api_error(409)) } else { Ok(calls) };
            async move { outcome }
        })
        .await;
        assert_eq!(result.ok(), Some(3));
    }
}
