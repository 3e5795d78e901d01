//! Running the controller: the watches that fill the caches, the leader's reconcile loop, the
//! admin server and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplate;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Client, Resource, ResourceExt, discovery};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::api::{INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL, Rollout, TRAFFIC_CHANGED_ANNOTATION, WorkloadKind};
use crate::cache::{Key, key_of};
use crate::cached::{CachedReplicaSet, CachedService};
use crate::context::{Context, Settings, Trigger, Watched};
use crate::observe;
use crate::reconcile::{self, guard_key};
use crate::runtime::admin::{self, Health};
use crate::runtime::client::{self, RateLimit};
use crate::runtime::leader::{self, LeaseSettings};
use crate::runtime::metrics::Metrics;

type RolloutObject = DeserializeGuard<Rollout>;

/// How the controller runs (the `run` subcommand's flags).
#[derive(Clone, Debug)]
pub struct Options {
    pub settings: Settings,
    /// Where /livez, /readyz and /metrics are served; `None` serves nothing.
    pub admin_address: Option<SocketAddr>,
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    /// Names this process in Events (reportingInstance) and in the leader Lease.
    pub instance_name: String,
    /// Client-side limit of API requests.
    pub rate_limit: Option<RateLimit>,
    /// Reconcile only while holding this Lease; `None` always reconciles.
    pub leader_election: Option<LeaseSettings>,
}

/// Runs until `shutdown` resolves: the reconciles in flight finish, then the leader Lease is
/// released. Losing the Lease stops reconciling at once; the process then waits to lead again.
pub async fn run(
    config: kube::Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let client = client::build(config, options.rate_limit, metrics.clone())?;
    let health = Arc::new(Health::default());
    if let Some(address) = options.admin_address {
        let listener = tokio::net::TcpListener::bind(address).await?;
        tracing::info!(address = %listener.local_addr()?, "admin server listening");
        tokio::spawn(admin::serve(listener, metrics.clone(), health.clone()));
    }
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop.send_replace(true);
    });

    let ctx = Arc::new(Context::new(client.clone(), options.settings.clone(), options.instance_name.clone(), metrics));
    register_existing(&ctx, &options.settings).await;
    let (triggers, trigger_receiver) = mpsc::channel(4096);
    let trigger_receiver = Arc::new(tokio::sync::Mutex::new(trigger_receiver));
    start_watches(&ctx, &triggers).await;
    wait_for_sync(&ctx, stopping.clone()).await;
    health.caches_synced.store(true, Ordering::SeqCst);

    let (leading_sender, mut leading) = watch::channel(options.leader_election.is_none());
    let (stop_campaign, campaign_stopping) = watch::channel(false);
    let campaign = options.leader_election.clone().map(|settings| {
        tokio::spawn(leader::campaign(client.clone(), settings, leading_sender.clone(), campaign_stopping))
    });
    let mut stopping_now = stopping.clone();
    loop {
        // Standby: keep the caches current, drop reconcile requests, wait to lead.
        loop {
            health.leading.store(*leading.borrow(), Ordering::SeqCst);
            if *stopping_now.borrow() || *leading.borrow() {
                break;
            }
            let mut receiver = trigger_receiver.lock().await;
            tokio::select! {
                _ = receiver.recv() => {}
                _ = leading.changed() => health.leadership_known.store(true, Ordering::SeqCst),
                _ = stopping_now.changed() => {}
            }
        }
        health.leadership_known.store(true, Ordering::SeqCst);
        if *stopping_now.borrow() {
            break;
        }
        let term = lead(&ctx, &options, &health, trigger_receiver.clone(), stopping.clone());
        tokio::select! {
            _ = term => break,
            // Lost the Lease: dropping the controller cancels its reconciles at once.
            _ = leading.wait_for(|leads| !*leads) => {
                health.leading.store(false, Ordering::SeqCst);
                health.rollouts_synced.store(false, Ordering::SeqCst);
            }
        }
    }
    health.leading.store(false, Ordering::SeqCst);
    stop_campaign.send_replace(true);
    if let Some(campaign) = campaign {
        let _ = campaign.await;
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// One term as leader: reconciles until `stopping` turns true (finishing what is in flight).
async fn lead(
    ctx: &Arc<Context>,
    options: &Options,
    health: &Arc<Health>,
    triggers: Arc<tokio::sync::Mutex<mpsc::Receiver<Trigger>>>,
    stopping: watch::Receiver<bool>,
) {
    let rollouts: Api<RolloutObject> = scoped_api(&ctx.client, &options.settings);
    let selector = instance_selector(&options.settings);
    let (reader, writer) = reflector::store();
    let forget = ctx.clone();
    let synced = health.clone();
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
            Event::Apply(DeserializeGuard(Ok(rollout))) => forget.cache_caught_up(rollout),
            // Store::wait_until_ready wakes only one waiter, and the Controller is already one.
            Event::InitDone if !synced.rollouts_synced.swap(true, Ordering::SeqCst) => {
                tracing::info!("Rollouts listed; ready")
            }
            _ => {}
        })
        .applied_objects();
    let trigger_stream = stream::unfold(triggers, |triggers| async move {
        let next = triggers.lock().await.recv().await;
        next.map(|trigger| (trigger, triggers))
    });
    let graceful = async move {
        let mut stopping = stopping;
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Controller::for_stream(rollout_stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .reconcile_on(trigger_stream)
        .graceful_shutdown_on(graceful)
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The Rollouts this controller manages: those of its --instance-id, else those without one.
fn instance_selector(settings: &Settings) -> String {
    match &settings.instance_id {
        Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
        None => format!("!{INSTANCE_ID_LABEL}"),
    }
}

/// Registers what the existing Rollouts reference before the reference caches list, so those
/// lists keep exactly the referenced objects and the first reconciles need no extra reads.
async fn register_existing(ctx: &Context, settings: &Settings) {
    let rollouts: Api<RolloutObject> = scoped_api(&ctx.client, settings);
    match rollouts.list(&ListParams::default().labels(&instance_selector(settings))).await {
        Ok(list) => {
            for rollout in list.items.iter().filter_map(|object| object.0.as_ref().ok()) {
                observe::register(ctx, rollout, &observe::references(rollout));
            }
        }
        // Not fatal: references are then registered, and fetched, as Rollouts are reconciled.
        Err(error) => tracing::warn!(%error, "could not list Rollouts at startup"),
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

/// Of a referenced Deployment only the template, selector, replicas and available pods matter.
fn strip_deployment(deployment: &mut Deployment) {
    strip_managed_fields(deployment);
    deployment.metadata.annotations = None;
    if let Some(status) = deployment.status.as_mut() {
        status.conditions = None;
    }
}

/// Of a referenced VirtualService only the spec matters, and of its annotations only ours and
/// whether there are any (weight patches add to the map or create it).
fn strip_virtual_service(vs: &mut DynamicObject) {
    strip_managed_fields(vs);
    if let Some(annotations) = vs.metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == TRAFFIC_CHANGED_ANNOTATION);
    }
    if let Some(data) = vs.data.as_object_mut() {
        data.remove("status");
    }
}

/// ReplicaSets with the pod-template-hash label; a change wakes the Rollout that owns it.
async fn watch_replica_sets(ctx: Arc<Context>, triggers: mpsc::Sender<Trigger>) {
    let api: Api<CachedReplicaSet> = scoped_api(&ctx.client, &ctx.settings);
    let mut events =
        std::pin::pin!(events(api, watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL), strip_managed_fields));
    while let Some(event) = events.next().await {
        let owners =
            ctx.replica_sets.apply(event, |_| true).iter().flat_map(|rs| owner_rollout(rs)).collect::<Vec<_>>();
        if !send_all(&triggers, owners).await {
            return;
        }
    }
}

fn owner_rollout(rs: &CachedReplicaSet) -> Vec<Key> {
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
    strip: fn(&mut K),
    triggers: mpsc::Sender<Trigger>,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut events = std::pin::pin!(events(api, watcher::Config::default(), strip));
    let mut list_epoch = 0;
    while let Some(event) = events.next().await {
        let Watched { cache, refs, .. } = watched(&ctx);
        let completes_list = matches!(event, Event::InitDone);
        if matches!(event, Event::Init) {
            list_epoch = refs.begin_list();
        }
        let changed = cache.apply(event, |key| refs.is_referenced(key));
        // Only once the cache holds the list may a miss mean "absent".
        if completes_list {
            refs.confirm_listed(list_epoch);
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
    let _ = ctx.workload_watches.set(watch_workload_kind);
    ctx.deployments.claim_start();
    ctx.services.claim_start();
    tokio::spawn(watch_replica_sets(ctx.clone(), triggers.clone()));
    tokio::spawn(watch_references(
        ctx.clone(),
        scoped_api::<Deployment>(client, settings),
        |c| &c.deployments,
        strip_deployment,
        triggers.clone(),
    ));

    tokio::spawn(watch_references(
        ctx.clone(),
        scoped_api::<CachedService>(client, settings),
        |c| &c.services,
        strip_managed_fields,
        triggers.clone(),
    ));
    tokio::spawn(watch_virtual_services(ctx.clone(), triggers.clone()));
}

/// Starts the watch of a workloadRef kind the first time a Rollout uses it: ReplicaSet and
/// PodTemplate workloads are rare, and watching every ReplicaSet of the cluster isn't free.
fn watch_workload_kind(ctx: &Arc<Context>, kind: WorkloadKind) {
    let Some(triggers) = ctx.triggers.get().cloned() else { return };
    let (client, settings) = (&ctx.client, &ctx.settings);
    match kind {
        WorkloadKind::ReplicaSet if ctx.workload_replica_sets.claim_start() => {
            let api = scoped_api::<ReplicaSet>(client, settings);
            tokio::spawn(watch_references(
                ctx.clone(),
                api,
                |c| &c.workload_replica_sets,
                strip_managed_fields,
                triggers,
            ));
        }
        WorkloadKind::PodTemplate if ctx.pod_templates.claim_start() => {
            let api = scoped_api::<PodTemplate>(client, settings);
            tokio::spawn(watch_references(ctx.clone(), api, |c| &c.pod_templates, strip_managed_fields, triggers));
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
    watch_references(ctx, api, |c| &c.virtual_services, strip_virtual_service, triggers).await;
}

async fn wait_for_sync(ctx: &Context, mut stopping: watch::Receiver<bool>) {
    let started = std::time::Instant::now();
    let mut warned_at = Duration::ZERO;
    while !ctx.caches_synced() && !*stopping.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stopping.changed() => {}
        }
        if started.elapsed() >= warned_at + Duration::from_secs(10) {
            warned_at = started.elapsed();
            tracing::warn!(waited = ?warned_at, "still waiting for caches to sync (check the controller's RBAC)");
        }
    }
}
