//! Builds one `Observed` snapshot per reconcile from the caches. The network is used only for
//! what a cache can't answer: an object referenced for the first time, Services the Rollout no
//! longer names (to release them), pods while a restart is due, the stable template's record
//! (a ControllerRevision) while the stable ReplicaSet is missing, and ClusterAnalysisTemplates
//! in namespace mode. Its analysis (runs and templates) is in `analysis.rs`.

mod analysis;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplate};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::{
    DESIRED_REPLICAS_ANNOTATION, EPHEMERAL_METADATA_ANNOTATION, MANAGED_BY_ANNOTATION, POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, Rollout, RouteKind, SCALE_DOWN_DEADLINE_ANNOTATION,
    TRAFFIC_CHANGED_ANNOTATION, WorkloadKind,
};
use crate::cache::{Key, key_of};
use crate::cached::{CachedReplicaSet, CachedService};
use crate::context::{Context, Error, Lazy, Watched};
use crate::plan::{
    self, Observed, PodView, RecordedTemplate, ReplicaSetView, ServiceView, VirtualServiceView, Workload, metadata,
    routers,
};

/// Looks `key` up in a reference cache; a reference too new for the cache to know is fetched.
async fn lookup<K>(watched: &Watched<K>, api: Api<K>, key: &Key) -> Result<Option<Arc<K>>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if let Some(object) = watched.cache.get(key) {
        return Ok(Some(object));
    }
    if watched.complete() && !watched.refs.unconfirmed(key) {
        return Ok(None);
    }
    let fetched = api.get_opt(&key.1).await?;
    watched.refs.confirm(key);
    watched.cache.put(key.clone(), fetched.clone());
    Ok(fetched.map(Arc::new))
}

/// What a Rollout references, by kind: a pure function of its spec.
#[derive(Default)]
pub struct References {
    pub deployments: Vec<Key>,
    pub replica_sets: Vec<Key>,
    pub pod_templates: Vec<Key>,
    pub services: Vec<Key>,
    pub virtual_services: Vec<Key>,
    pub ingresses: Vec<Key>,
    /// ApisixRoutes, HTTPRoutes and GRPCRoutes, by kind.
    pub routes: BTreeMap<RouteKind, Vec<Key>>,
}

pub fn references(rollout: &Rollout) -> References {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let key = |name: &str| (namespace.clone(), name.to_string());
    let mut refs = References::default();
    if let Some(workload) = &rollout.spec.workload_ref {
        let target = match workload.kind {
            WorkloadKind::Deployment => &mut refs.deployments,
            WorkloadKind::ReplicaSet => &mut refs.replica_sets,
            WorkloadKind::PodTemplate => &mut refs.pod_templates,
        };
        target.push(key(&workload.name));
    }
    if let Some(canary) = &rollout.spec.strategy.canary {
        refs.services =
            [&canary.stable_service, &canary.canary_service].into_iter().flatten().map(|s| key(s)).collect();
        refs.virtual_services = routers::istio::references(canary, &namespace);
        let name = rollout.metadata.name.as_deref().unwrap_or_default();
        refs.ingresses = routers::nginx::references(canary, name).iter().map(|i| key(i)).collect();
        for (kind, reference) in routers::route_references(canary, &namespace) {
            refs.routes.entry(kind).or_default().push(reference);
        }
    }
    refs
}

/// Records `refs`, what `rollout` references, so the caches keep those objects and their changes
/// wake it. Returns the Services it named before and no longer does.
pub fn register(ctx: &Context, rollout: &Rollout, refs: &References) -> Vec<Key> {
    let rollout_key = key_of(rollout);
    ctx.deployments.refs.set(&rollout_key, refs.deployments.clone());
    ctx.workload_replica_sets.refs.set(&rollout_key, refs.replica_sets.clone());
    ctx.pod_templates.refs.set(&rollout_key, refs.pod_templates.clone());
    ctx.virtual_services.refs.set(&rollout_key, refs.virtual_services.clone());
    ctx.ingresses.refs.set(&rollout_key, refs.ingresses.clone());
    for kind in RouteKind::ALL {
        let keys = refs.routes.get(&kind).cloned().unwrap_or_default();
        ctx.routes(kind).watched.refs.set(&rollout_key, keys);
    }
    ctx.services.refs.set(&rollout_key, refs.services.clone())
}

pub async fn observe(ctx: &Arc<Context>, rollout: &Rollout, now: Timestamp) -> Result<Observed, Error> {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let client = ctx.client.clone();
    let refs = references(rollout);
    let released = register(ctx, rollout, &refs);

    let workload = observe_workload(ctx, rollout).await?;
    let analysis_templates = analysis::templates(ctx, rollout).await?;

    let services_api = Api::<CachedService>::namespaced(client.clone(), &namespace);
    let mut services = BTreeMap::new();
    for key in &refs.services {
        if let Some(service) = lookup(&ctx.services, services_api.clone(), key).await? {
            services.insert(key.1.clone(), service_view(&service));
        }
    }
    // Services this Rollout no longer names: the plan releases them if it still manages them.
    for key in released {
        if let Some(service) = services_api.get_opt(&key.1).await? {
            services.insert(key.1.clone(), service_view(&service));
        }
    }

    let virtual_services = match ctx.virtual_service_api() {
        None => None,
        Some(resource) => {
            let mut found = BTreeMap::new();
            for key in &refs.virtual_services {
                let api = Api::<DynamicObject>::namespaced_with(client.clone(), &key.0, &resource);
                if let Some(vs) = lookup(&ctx.virtual_services, api, key).await? {
                    found.insert(key.clone(), virtual_service_view(key, &vs));
                }
            }
            Some(found)
        }
    };

    let mut ingresses = BTreeMap::new();
    if !refs.ingresses.is_empty() {
        ctx.watch_kind(Lazy::Ingresses);
        let api = Api::<Ingress>::namespaced(client.clone(), &namespace);
        for key in &refs.ingresses {
            if let Some(ingress) = lookup(&ctx.ingresses, api.clone(), key).await? {
                ingresses.insert(key.1.clone(), (*ingress).clone());
            }
        }
    }

    let mut route_objects = BTreeMap::new();
    for (kind, keys) in &refs.routes {
        ctx.watch_kind(Lazy::Routes(*kind));
        let routes = ctx.routes(*kind);
        if !routes.served() {
            route_objects.insert(*kind, None);
            continue;
        }
        let resource = kind.api_resource();
        let mut found = BTreeMap::new();
        for key in keys {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), &key.0, &resource);
            if let Some(object) = lookup(&routes.watched, api, key).await? {
                found.insert(key.clone(), (*object).clone());
            }
        }
        route_objects.insert(*kind, Some(found));
    }

    let uid = rollout.metadata.uid.clone().unwrap_or_default();
    let selector = rollout
        .spec
        .selector
        .as_ref()
        .or_else(|| workload.as_ref().and_then(|w| w.selector.as_ref()))
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    let mut replica_sets: Vec<ReplicaSetView> =
        ctx.replica_sets.indexed(&uid).iter().map(|rs| replica_set_view(rs, true)).collect();
    if !selector.is_empty() {
        let orphans = ctx.replica_sets.indexed(&format!("orphan/{namespace}"));
        let matches = |rs: &CachedReplicaSet| selector.iter().all(|(k, v)| rs.labels().get(k) == Some(v));
        replica_sets.extend(orphans.iter().filter(|rs| matches(rs)).map(|rs| replica_set_view(rs, false)));
    }
    replica_sets.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));

    let pods = if plan::restart_due(rollout, now) && !selector.is_empty() {
        let label_selector = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let names: Vec<&str> = replica_sets.iter().map(|rs| rs.name.as_str()).collect();
        let list = Api::<Pod>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default().labels(&label_selector))
            .await?;
        list.items.iter().filter(|pod| owned_by_any(pod, &names)).map(pod_view).collect()
    } else {
        Vec::new()
    };

    // Read only when the stable ReplicaSet is gone, so the plan can create it again.
    let stable_template = match missing_stable(rollout, &replica_sets) {
        Some(name) => Api::<ControllerRevision>::namespaced(client.clone(), &namespace)
            .get_opt(&name)
            .await?
            .filter(|record| record.owner_references().iter().any(|o| o.uid == uid))
            .and_then(|record| recorded(&record)),
        None => None,
    };

    Ok(Observed {
        rollout: rollout.clone(),
        workload,
        replica_sets,
        services,
        virtual_services,
        ingresses,
        route_objects,
        pods,
        stable_template,
        analysis_runs: analysis::runs(ctx, rollout),
        analysis_templates,
        now,
        config: ctx.settings.plan,
    })
}

/// The name of the stable ReplicaSet when it is gone (someone deleted it).
fn missing_stable(rollout: &Rollout, replica_sets: &[ReplicaSetView]) -> Option<String> {
    let status = rollout.status.as_ref()?;
    // The current template's ReplicaSet is created from the spec, not from a record.
    let stable = status.stable_rs.as_deref().filter(|stable| status.current_pod_hash.as_deref() != Some(*stable))?;
    let present = replica_sets.iter().any(|rs| rs.hash == stable && !rs.deleting);
    (!present).then(|| format!("{}-{stable}", rollout.name_any()))
}

fn recorded(record: &ControllerRevision) -> Option<RecordedTemplate> {
    let template = serde_json::from_value(record.data.as_ref()?.0.clone()).ok()?;
    Some(RecordedTemplate { template, revision: u64::try_from(record.revision).ok()? })
}

async fn observe_workload(ctx: &Arc<Context>, rollout: &Rollout) -> Result<Option<Workload>, Error> {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let client = ctx.client.clone();
    let reference = rollout.spec.workload_ref.as_ref();
    let Some(reference) = reference else { return Ok(None) };
    ctx.watch_kind(Lazy::Workload(reference.kind));
    let key = (namespace.clone(), reference.name.clone());
    Ok(match reference.kind {
        WorkloadKind::Deployment => {
            lookup(&ctx.deployments, Api::<Deployment>::namespaced(client, &namespace), &key).await?.map(|d| {
                let spec = d.spec.clone().unwrap_or_default();
                Workload {
                    template: spec.template,
                    selector: Some(spec.selector),
                    generation: d.metadata.generation,
                    deployment_replicas: Some(spec.replicas.unwrap_or(1)),
                    deployment_available: d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
                }
            })
        }
        WorkloadKind::ReplicaSet => {
            lookup(&ctx.workload_replica_sets, Api::<ReplicaSet>::namespaced(client, &namespace), &key).await?.map(
                |rs| {
                    let spec = rs.spec.clone().unwrap_or_default();
                    Workload {
                        template: spec.template.unwrap_or_default(),
                        selector: Some(spec.selector),
                        generation: rs.metadata.generation,
                        ..Default::default()
                    }
                },
            )
        }
        WorkloadKind::PodTemplate => {
            lookup(&ctx.pod_templates, Api::<PodTemplate>::namespaced(client, &namespace), &key).await?.map(|pt| {
                Workload {
                    template: pt.template.clone().unwrap_or_default(),
                    generation: pt.metadata.generation,
                    ..Default::default()
                }
            })
        }
    })
}

fn parse_time(value: Option<&String>) -> Option<Timestamp> {
    value.and_then(|v| v.parse().ok())
}

pub fn replica_set_view(rs: &CachedReplicaSet, owned: bool) -> ReplicaSetView {
    let annotations = rs.annotations();
    let status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let failure = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()));
    ReplicaSetView {
        name: rs.name_any(),
        hash: rs.labels().get(POD_TEMPLATE_HASH_LABEL).cloned().unwrap_or_default(),
        owned,
        revision: annotations.get(REVISION_ANNOTATION).and_then(|r| r.parse().ok()),
        revision_history: annotations.get(REVISION_HISTORY_ANNOTATION).cloned(),
        spec_replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        status_replicas: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        desired_replicas_annotation: annotations.get(DESIRED_REPLICAS_ANNOTATION).and_then(|r| r.parse().ok()),
        scale_down_deadline: parse_time(annotations.get(SCALE_DOWN_DEADLINE_ANNOTATION)),
        created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        status_current: status.observed_generation >= rs.metadata.generation,
        failure,
        injected: annotations.get(EPHEMERAL_METADATA_ANNOTATION).map(|r| metadata::parse_record(r)).unwrap_or_default(),
        deleting: rs.metadata.deletion_timestamp.is_some(),
    }
}

fn service_view(service: &CachedService) -> ServiceView {
    ServiceView {
        name: service.name_any(),
        selector: service.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default(),
        managed_by: service.annotations().get(MANAGED_BY_ANNOTATION).cloned(),
        traffic_changed_at: parse_time(service.annotations().get(TRAFFIC_CHANGED_ANNOTATION)),
    }
}

fn virtual_service_view(key: &Key, vs: &DynamicObject) -> VirtualServiceView {
    VirtualServiceView {
        namespace: key.0.clone(),
        name: key.1.clone(),
        spec: vs.data.get("spec").cloned().unwrap_or_default(),
        traffic_changed_at: parse_time(vs.annotations().get(TRAFFIC_CHANGED_ANNOTATION)),
        annotated: vs.metadata.annotations.is_some(),
        resource_version: vs.metadata.resource_version.clone(),
    }
}

fn owned_by_any(pod: &Pod, replica_sets: &[&str]) -> bool {
    pod.owner_references().iter().any(|o| o.kind == "ReplicaSet" && replica_sets.contains(&o.name.as_str()))
}

fn pod_view(pod: &Pod) -> PodView {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodView {
        name: pod.name_any(),
        created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        available: ready,
        deleting: pod.metadata.deletion_timestamp.is_some(),
    }
}
