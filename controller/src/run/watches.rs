//! The watches that fill the caches: ReplicaSets with the pod-template-hash label, and only the
//! objects Rollouts reference (Deployments, Services, VirtualServices, and workload ReplicaSets
//! and PodTemplates once a Rollout uses one). A change wakes the Rollouts it concerns.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplate;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt, discovery};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::api::{POD_TEMPLATE_HASH_LABEL, TRAFFIC_CHANGED_ANNOTATION, WorkloadKind};
use crate::cache::{Key, key_of};
use crate::cached::{CachedReplicaSet, CachedService};
use crate::context::{Context, Trigger, Watched};

use super::scoped_api;

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

pub(super) async fn start_watches(ctx: &Arc<Context>, triggers: &mpsc::Sender<Trigger>) {
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
