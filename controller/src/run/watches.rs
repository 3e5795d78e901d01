//! The watches that fill the caches: ReplicaSets with the pod-template-hash label, AnalysisRuns
//! (one watch for both loops), and only the objects Rollouts reference (Deployments, Services,
//! VirtualServices, and workload ReplicaSets and PodTemplates, AnalysisTemplates and
//! ClusterAnalysisTemplates once a Rollout uses one). A change wakes the Rollouts it concerns.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplate;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt, discovery};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::analysis::reconcile::Analysis;
use crate::api::{
    AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, POD_TEMPLATE_HASH_LABEL, RouteKind,
    TRAFFIC_CHANGED_ANNOTATION, WorkloadKind,
};
use crate::cache::{Key, key_of};
use crate::cached::{CachedReplicaSet, CachedService};
use crate::context::{Context, Lazy, Trigger, Watched};

use super::{instance_selector, scoped_api};

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

/// Of a referenced router object (a VirtualService, an ApisixRoute, ...) only the spec and labels
/// matter, and of its annotations only ours and whether there are any (weight patches add to the
/// map or create it).
fn strip_route_object(vs: &mut DynamicObject) {
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
        let owners = ctx
            .replica_sets
            .apply(event, |_| true)
            .iter()
            .flat_map(|rs| owner_rollout(rs.as_ref()))
            .collect::<Vec<_>>();
        if !send_all(&triggers, owners).await {
            return;
        }
    }
}

fn owner_rollout<K: Resource>(object: &K) -> Vec<Key> {
    let namespace = object.namespace().unwrap_or_default();
    object
        .owner_references()
        .iter()
        .filter(|o| o.kind == "Rollout" && o.controller == Some(true))
        .map(|o| (namespace.clone(), o.name.clone()))
        .collect()
}

/// The AnalysisRuns of this instance, for both loops: the store the AnalysisRun loop reconciles
/// from, and the index by controller. A change goes to the AnalysisRun loop (while this process
/// leads) and wakes the Rollout that controls the run.
async fn watch_analysis_runs(ctx: Arc<Context>, analysis: Arc<Analysis>, triggers: mpsc::Sender<Trigger>) {
    let api: Api<AnalysisRun> = scoped_api(&ctx.client, &ctx.settings);
    let config = watcher::Config::default().labels(&instance_selector(&ctx.settings));
    let mut events = std::pin::pin!(events(api, config, strip_managed_fields));
    while let Some(event) = events.next().await {
        if let Event::Delete(run) = &event {
            tracing::debug!(name = %run.name_any(), "analysis run deleted");
            analysis.forget(run);
        }
        let changed = ctx.analysis_runs.apply(event);
        let owners: Vec<Key> = changed.iter().flat_map(|run| owner_rollout(run.as_ref())).collect();
        ctx.analysis_runs.request(&changed).await;
        if !send_all(&triggers, owners).await {
            return;
        }
    }
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

pub(super) async fn start_watches(ctx: &Arc<Context>, analysis: &Arc<Analysis>, triggers: &mpsc::Sender<Trigger>) {
    let (client, settings) = (&ctx.client, &ctx.settings);
    let _ = ctx.triggers.set(triggers.clone());
    let _ = ctx.lazy_watches.set(watch_lazy_kind);
    ctx.deployments.claim_start();
    ctx.services.claim_start();
    tokio::spawn(watch_replica_sets(ctx.clone(), triggers.clone()));
    tokio::spawn(watch_analysis_runs(ctx.clone(), analysis.clone(), triggers.clone()));
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
    // The routers' APIs are known before the first reconcile, so a Rollout isn't told its
    // router's CRD is missing only because the lookup hasn't answered yet. Watches of the
    // routers' custom resources start when a Rollout uses the kind.
    if let Some(resource) = discover_virtual_services(client).await {
        ctx.set_virtual_service_api(resource);
    }
    tokio::spawn(watch_virtual_services(ctx.clone(), triggers.clone()));
    for kind in RouteKind::ALL {
        if serves(client, kind).await.is_some() {
            ctx.routes(kind).set_served();
        }
    }
}

/// Starts the watch of a kind the first time a Rollout uses it: ReplicaSet and PodTemplate
/// workloads are rare (and watching every ReplicaSet of the cluster isn't free), and so are
/// Rollouts with analysis or ingress-nginx. ClusterAnalysisTemplates are asked for only without --namespace.
fn watch_lazy_kind(ctx: &Arc<Context>, kind: Lazy) {
    let Some(triggers) = ctx.triggers.get().cloned() else { return };
    let (client, settings) = (&ctx.client, &ctx.settings);
    match kind {
        Lazy::Workload(WorkloadKind::ReplicaSet) if ctx.workload_replica_sets.claim_start() => {
            spawn_references(ctx, scoped_api::<ReplicaSet>(client, settings), |c| &c.workload_replica_sets, triggers);
        }
        Lazy::Workload(WorkloadKind::PodTemplate) if ctx.pod_templates.claim_start() => {
            spawn_references(ctx, scoped_api::<PodTemplate>(client, settings), |c| &c.pod_templates, triggers);
        }
        Lazy::AnalysisTemplates if ctx.analysis_templates.claim_start() => {
            let api = scoped_api::<AnalysisTemplate>(client, settings);
            spawn_references(ctx, api, |c| &c.analysis_templates, triggers);
        }
        Lazy::Ingresses if ctx.ingresses.claim_start() => {
            spawn_references(ctx, scoped_api::<Ingress>(client, settings), |c| &c.ingresses, triggers);
        }
        Lazy::Routes(kind) if ctx.routes(kind).claim_lookup() => {
            tokio::spawn(watch_routes(ctx.clone(), kind, triggers));
        }
        Lazy::ClusterAnalysisTemplates if ctx.cluster_analysis_templates.claim_start() => {
            let api = Api::<ClusterAnalysisTemplate>::all(client.clone());
            spawn_references(ctx, api, |c| &c.cluster_analysis_templates, triggers);
        }
        _ => {}
    }
}

fn spawn_references<K>(
    ctx: &Arc<Context>,
    api: Api<K>,
    watched: fn(&Context) -> &Watched<K>,
    triggers: mpsc::Sender<Trigger>,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    tokio::spawn(watch_references(ctx.clone(), api, watched, strip_managed_fields, triggers));
}

/// How often a router's API the cluster doesn't serve yet is looked for (one discovery request).
const API_LOOKUP_PERIOD: Duration = Duration::from_secs(10);

/// Whether the cluster serves `kind` at the version this controller reads.
async fn serves(client: &Client, kind: RouteKind) -> Option<ApiResource> {
    let (group, version, kind, _) = kind.gvk();
    let group = discovery::group(client, group).await.ok()?;
    group.versioned_resources(version).into_iter().map(|(resource, _)| resource).find(|r| r.kind == kind)
}

/// Watches the objects of a router kind once the cluster serves it; until then the Rollouts that
/// use it are told its CRD is missing, and it is looked for again every 10 s.
async fn watch_routes(ctx: Arc<Context>, kind: RouteKind, triggers: mpsc::Sender<Trigger>) {
    let found_at_start = ctx.routes(kind).served();
    let resource = loop {
        if let Some(resource) = serves(&ctx.client, kind).await {
            break resource;
        }
        tokio::time::sleep(API_LOOKUP_PERIOD).await;
    };
    tracing::info!(kind = %resource.kind, version = %resource.version, "watching router objects");
    let routes = ctx.routes(kind);
    routes.watched.claim_start();
    routes.set_served();
    // Rollouts that were told the CRD is missing look again.
    if !found_at_start && !send_all(&triggers, routes.watched.refs.all_rollouts()).await {
        return;
    }
    let api: Api<DynamicObject> = match &ctx.settings.namespace {
        Some(namespace) => Api::namespaced_with(ctx.client.clone(), namespace, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let watched: fn(&Context) -> &Watched<DynamicObject> = match kind {
        RouteKind::ApisixRoute => |c| &c.routes(RouteKind::ApisixRoute).watched,
        RouteKind::HttpRoute => |c| &c.routes(RouteKind::HttpRoute).watched,
        RouteKind::GrpcRoute => |c| &c.routes(RouteKind::GrpcRoute).watched,
    };
    watch_references(ctx, api, watched, strip_route_object, triggers).await;
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
/// the API is missing, and it is looked for again every 10 s.
async fn watch_virtual_services(ctx: Arc<Context>, triggers: mpsc::Sender<Trigger>) {
    let found_at_start = ctx.virtual_service_api();
    let resource = match found_at_start.clone() {
        Some(resource) => resource,
        None => loop {
            tokio::time::sleep(API_LOOKUP_PERIOD).await;
            if let Some(resource) = discover_virtual_services(&ctx.client).await {
                break resource;
            }
        },
    };
    tracing::info!(version = %resource.version, "watching Istio VirtualServices");
    ctx.virtual_services.claim_start();
    ctx.set_virtual_service_api(resource.clone());
    // Rollouts that were told the API is missing look again.
    if found_at_start.is_none() && !send_all(&triggers, ctx.virtual_services.refs.all_rollouts()).await {
        return;
    }
    let api: Api<DynamicObject> = match &ctx.settings.namespace {
        Some(namespace) => Api::namespaced_with(ctx.client.clone(), namespace, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    watch_references(ctx, api, |c| &c.virtual_services, strip_route_object, triggers).await;
}
