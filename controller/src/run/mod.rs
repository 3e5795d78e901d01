//! Running the controller: the watches that fill the caches, the leader's reconcile loop, the
//! admin server and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, ListParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::reflector::{self};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{mpsc, watch};

use crate::analysis::providers::Providers;
use crate::analysis::reconcile::Analysis;
use crate::api::{INSTANCE_ID_LABEL, Rollout};
use crate::context::{Context, Settings, Trigger};
use crate::observe;
use crate::reconcile::{self, guard_key};
use crate::runtime::admin::{self, Health};
use crate::runtime::client::{self, RateLimit};
use crate::runtime::leader::{self, LeaseSettings};
use crate::runtime::metrics::Metrics;

mod analysis_runs;
mod watches;
use watches::start_watches;

type RolloutObject = DeserializeGuard<Rollout>;

/// How the controller runs (the `run` subcommand's flags).
#[derive(Clone, Debug)]
pub struct Options {
    pub settings: Settings,
    /// Where /livez, /readyz and /metrics are served; `None` serves nothing.
    pub admin_address: Option<SocketAddr>,
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    /// AnalysisRuns reconciled at once.
    pub analysis_concurrency: u16,
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
    let analysis = Arc::new(Analysis::new(ctx.clone(), Providers::new(client.clone())?));
    register_existing(&ctx, &options.settings).await;
    let (triggers, trigger_receiver) = mpsc::channel(4096);
    let trigger_receiver = Arc::new(tokio::sync::Mutex::new(trigger_receiver));
    start_watches(&ctx, &analysis, &triggers).await;
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
        let term = futures::future::join(
            lead(&ctx, &options, &health, trigger_receiver.clone(), stopping.clone()),
            analysis_runs::run(analysis.clone(), &options, stopping.clone()),
        );
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

pub(crate) fn scoped_api<K>(client: &Client, settings: &Settings) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match &settings.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
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
