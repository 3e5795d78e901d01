//! Running the controller: watches that fill the caches, the reconcile loop, the admin server
//! and shutdown.

pub mod admin;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{PodTemplate, Service};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Client, Resource, ResourceExt, discovery};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::api::{INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL, Rollout};
use crate::cache::{Key, key_of};
use crate::reconcile::{self, Context, Settings, Trigger, Watched};
use metrics::Metrics;

type RolloutObject = DeserializeGuard<Rollout>;

/// How the controller runs (the `run` subcommand's flags).
#[derive(Clone, Debug)]
pub struct Options {
    pub settings: Settings,
    /// Where /livez, /readyz and /metrics are served; `None` serves nothing.
    pub admin_address: Option<SocketAddr>,
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    /// Names this process in Events (reportingInstance).
    pub instance_name: String,
}

/// State the admin server reports.
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
}

/// Runs until `shutdown` resolves; the reconcile in flight finishes first.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    if let Some(address) = options.admin_address {
        let listener = tokio::net::TcpListener::bind(address).await?;
        tracing::info!(address = %listener.local_addr()?, "admin server listening");
        tokio::spawn(admin::serve(listener, metrics.clone(), health.clone()));
    }
    let reporter = Reporter { controller: "rollouts-controller".into(), instance: Some(options.instance_name.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let ctx = Arc::new(Context::new(client.clone(), options.settings.clone(), recorder, metrics));

    let (triggers, trigger_stream) = trigger_channel();
    start_watches(&ctx, &triggers).await;
    wait_for_sync(&ctx).await;

    let rollouts: Api<RolloutObject> = scoped_api(&client, &options.settings);
    let selector = match &options.settings.instance_id {
        Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
        None => format!("!{INSTANCE_ID_LABEL}"),
    };
    let (reader, writer) = reflector::store();
    let forget = ctx.clone();
    let ready = health.clone();
    let rollout_stream = watcher::watcher(rollouts, watcher::Config::default().labels(&selector))
        .default_backoff()
        .modify(|object: &mut RolloutObject| {
            if let Ok(rollout) = object.0.as_mut() {
                rollout.managed_fields_mut().clear();
            }
        })
        .reflect(writer)
        .inspect_ok(move |event| match event {
            Event::Delete(object) => forget.forget(&guard_key(object)),
            // Every cache has its first full list: ready. (Store::wait_until_ready wakes only
            // one waiter, and the Controller is already one.)
            Event::InitDone if !ready.ready.swap(true, Ordering::SeqCst) => tracing::info!("caches synced; ready"),
            _ => {}
        })
        .applied_objects();

    Controller::for_stream(rollout_stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .reconcile_on(trigger_stream)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    health.ready.store(false, Ordering::SeqCst);
    tracing::info!("controller stopped");
    Ok(())
}

fn guard_key(object: &RolloutObject) -> Key {
    match &object.0 {
        Ok(rollout) => key_of(rollout),
        Err(invalid) => {
            (invalid.metadata.namespace.clone().unwrap_or_default(), invalid.metadata.name.clone().unwrap_or_default())
        }
    }
}

fn scoped_api<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match &settings.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Events of watched objects become reconcile requests for the Rollouts they concern.
fn trigger_channel() -> (mpsc::Sender<Trigger>, impl Stream<Item = Trigger> + Send + 'static) {
    let (sender, receiver) = mpsc::channel(4096);
    let stream = stream::unfold(receiver, |mut receiver| async move { receiver.recv().await.map(|t| (t, receiver)) });
    (sender, stream)
}

fn rollout_trigger(key: &Key) -> Trigger {
    ObjectRef::new(&key.1).within(&key.0)
}

/// Sends reconcile requests; false once the controller has stopped listening.
async fn send_all(triggers: &mpsc::Sender<Trigger>, rollouts: impl IntoIterator<Item = Key>) -> bool {
    for rollout in rollouts {
        if triggers.send(rollout_trigger(&rollout)).await.is_err() {
            return false;
        }
    }
    true
}

/// The watch's events, with failures logged (the watcher retries with backoff).
fn events<K>(api: Api<K>, config: watcher::Config, strip: fn(&mut K)) -> impl Stream<Item = Event<K>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher::watcher(api, config).default_backoff().modify(strip).filter_map(|event| async move {
        event.inspect_err(|error| tracing::warn!(%error, "watch failed; retrying")).ok()
    })
}

fn strip_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The controller needs no pod template of its own ReplicaSets: dropping it keeps them small.
fn strip_replica_set(rs: &mut ReplicaSet) {
    strip_managed_fields(rs);
    if let Some(spec) = rs.spec.as_mut() {
        spec.template = None;
    }
}

/// ReplicaSets with the pod-template-hash label; a change wakes the Rollout that owns it.
async fn watch_replica_sets(ctx: Arc<Context>, triggers: mpsc::Sender<Trigger>) {
    let api: Api<ReplicaSet> = scoped_api(&ctx.client, &ctx.settings);
    let mut events =
        std::pin::pin!(events(api, watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL), strip_replica_set));
    while let Some(event) = events.next().await {
        let owners =
            ctx.replica_sets.apply(event, |_| true).iter().flat_map(|rs| owner_rollout(rs)).collect::<Vec<_>>();
        if !send_all(&triggers, owners).await {
            return;
        }
    }
}

fn owner_rollout(rs: &ReplicaSet) -> Vec<Key> {
    let namespace = rs.metadata.namespace.clone().unwrap_or_default();
    rs.owner_references()
        .iter()
        .filter(|o| o.kind == "Rollout" && o.controller == Some(true))
        .map(|o| (namespace.clone(), o.name.clone()))
        .collect()
}

/// Objects of one kind that Rollouts reference: only those are kept, and a change wakes the
/// Rollouts that reference it.
async fn watch_references<K>(
    ctx: Arc<Context>,
    api: Api<K>,
    watched: fn(&Context) -> &Watched<K>,
    triggers: mpsc::Sender<Trigger>,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut events = std::pin::pin!(events(api, watcher::Config::default(), strip_managed_fields::<K>));
    while let Some(event) = events.next().await {
        let Watched { cache, refs, .. } = watched(&ctx);
        let completes_list = matches!(event, Event::InitDone);
        let changed = cache.apply(event, |key| refs.is_referenced(key));
        if completes_list {
            refs.confirm_all();
        }
        let rollouts =
            changed.iter().flat_map(|object| refs.rollouts_for(&key_of(object.as_ref()))).collect::<Vec<_>>();
        if !send_all(&triggers, rollouts).await {
            return;
        }
    }
}

async fn start_watches(ctx: &Arc<Context>, triggers: &mpsc::Sender<Trigger>) {
    let (client, settings) = (&ctx.client, &ctx.settings);
    let _ = ctx.triggers.set(triggers.clone());
    ctx.deployments.claim_start();
    ctx.services.claim_start();
    tokio::spawn(watch_replica_sets(ctx.clone(), triggers.clone()));
    tokio::spawn(watch_references(
        ctx.clone(),
        scoped_api::<Deployment>(client, settings),
        |c| &c.deployments,
        triggers.clone(),
    ));

    tokio::spawn(watch_references(
        ctx.clone(),
        scoped_api::<Service>(client, settings),
        |c| &c.services,
        triggers.clone(),
    ));
    tokio::spawn(watch_virtual_services(ctx.clone(), triggers.clone()));
}

/// Starts the watch of a workloadRef kind the first time a Rollout uses it: ReplicaSet and
/// PodTemplate workloads are rare, and watching every ReplicaSet of the cluster isn't free.
pub fn watch_workload_kind(ctx: &Arc<Context>, kind: &str) {
    let Some(triggers) = ctx.triggers.get().cloned() else { return };
    let (client, settings) = (&ctx.client, &ctx.settings);
    match kind {
        "ReplicaSet" if ctx.workload_replica_sets.claim_start() => {
            let api = scoped_api::<ReplicaSet>(client, settings);
            tokio::spawn(watch_references(ctx.clone(), api, |c| &c.workload_replica_sets, triggers));
        }
        "PodTemplate" if ctx.pod_templates.claim_start() => {
            let api = scoped_api::<PodTemplate>(client, settings);
            tokio::spawn(watch_references(ctx.clone(), api, |c| &c.pod_templates, triggers));
        }
        _ => {}
    }
}

/// The newest served version of networking.istio.io VirtualServices, if the cluster has any.
async fn discover_virtual_services(client: &Client) -> Option<ApiResource> {
    let group = discovery::group(client, "networking.istio.io").await.ok()?;
    ["v1", "v1beta1", "v1alpha3"].iter().find_map(|version| {
        group
            .versioned_resources(version)
            .into_iter()
            .find(|(resource, _)| resource.kind == "VirtualService")
            .map(|(resource, _)| resource)
    })
}

/// Watches VirtualServices once their API exists; until then Rollouts that use Istio are told
/// the API is missing, and it is looked for again every 30 s.
async fn watch_virtual_services(ctx: Arc<Context>, triggers: mpsc::Sender<Trigger>) {
    let resource = loop {
        if let Some(resource) = discover_virtual_services(&ctx.client).await {
            break resource;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    };
    tracing::info!(version = %resource.version, "watching Istio VirtualServices");
    ctx.virtual_services.claim_start();
    ctx.set_virtual_service_api(resource.clone());
    // Rollouts that were told the API is missing look again.
    if !send_all(&triggers, ctx.virtual_services.refs.all_rollouts()).await {
        return;
    }
    let api: Api<DynamicObject> = match &ctx.settings.namespace {
        Some(namespace) => Api::namespaced_with(ctx.client.clone(), namespace, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    watch_references(ctx, api, |c| &c.virtual_services, triggers).await;
}

async fn wait_for_sync(ctx: &Context) {
    let mut waited = Duration::ZERO;
    while !ctx.caches_synced() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
        if waited.as_secs() > 0 && waited.as_millis().is_multiple_of(10_000) {
            tracing::warn!(waited = ?waited, "still waiting for caches to sync");
        }
    }
}
