//! Slim forms of the Kubernetes objects the caches hold. Watches decode straight into them, so
//! what plans never read (a ReplicaSet's pod template, a Service's ports) is never stored: a
//! k8s-openapi `ReplicaSet` is 2.3 KB before its first string, these are a few hundred bytes.

use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A ReplicaSet as plans see it: its metadata, size and status, without the pod template.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedReplicaSet {
    pub metadata: ObjectMeta,
    pub spec: Option<ReplicaSetSize>,
    pub status: Option<ReplicaSetStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSize {
    pub replicas: Option<i32>,
}

/// A Service as plans see it: its metadata and selector.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedService {
    pub metadata: ObjectMeta,
    pub spec: Option<ServiceSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServiceSelector {
    pub selector: Option<BTreeMap<String, String>>,
}

/// Index value of ReplicaSets without a controller: `orphan/<namespace>`.
pub fn replica_set_owner(rs: &CachedReplicaSet) -> Option<String> {
    let controller = rs.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    Some(match controller {
        Some(owner) => owner.uid.clone(),
        None => format!("orphan/{}", rs.metadata.namespace.as_deref().unwrap_or_default()),
    })
}

/// Serves a slim type from the API of the full one it was cut from.
macro_rules! resource_like {
    ($slim:ty, $full:ty) => {
        impl k8s_openapi::Resource for $slim {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str = <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$full as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $slim {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource_like!(CachedReplicaSet, k8s_openapi::api::apps::v1::ReplicaSet);
resource_like!(CachedService, k8s_openapi::api::core::v1::Service);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn slim_objects_read_what_plans_need_from_full_api_objects() {
        let rs: CachedReplicaSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "app-6f9c", "namespace": "prod", "labels": {"rollouts-pod-template-hash": "6f9c"}},
            "spec": {"replicas": 3, "minReadySeconds": 5, "selector": {"matchLabels": {"app": "a"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}},
            "status": {"replicas": 3, "availableReplicas": 2, "observedGeneration": 4}
        }))
        .unwrap();
        assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(3));
        assert_eq!(rs.status.as_ref().and_then(|s| s.available_replicas), Some(2));
        assert_eq!(CachedReplicaSet::url_path(&(), Some("prod")), "/apis/apps/v1/namespaces/prod/replicasets");

        let service: CachedService = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app-stable", "namespace": "prod"},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}
        }))
        .unwrap();
        let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(selector.get("app").map(String::as_str), Some("a"));
        assert_eq!(CachedService::url_path(&(), Some("prod")), "/api/v1/namespaces/prod/services");
    }
}
