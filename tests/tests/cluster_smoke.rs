//! Proves the test cluster is real: the ReplicaSet, garbage-collector and HPA controllers run,
//! and RBAC is enforced.

use std::time::Duration;

use e2e::fixtures::deployment;
use e2e::{DEFAULT_TIMEOUT, TestNamespace, User, poll_until};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn deployment_becomes_ready_and_is_garbage_collected() -> anyhow::Result<()> {
    let ns = TestNamespace::new("smoke-deployment").await?;
    ns.apply(&deployment("web", 3, "nginx:1.27")).await?;
    ns.wait_for::<Deployment>("web", "3 ready replicas", DEFAULT_TIMEOUT, |d| {
        d.status.as_ref().and_then(|s| s.ready_replicas) == Some(3)
    })
    .await?;
    assert_eq!(ns.api::<Pod>().list(&ListParams::default()).await?.items.len(), 3);

    ns.api::<Deployment>().delete("web", &DeleteParams::background()).await?;
    let replica_sets = ns.api::<ReplicaSet>();
    let pods = ns.api::<Pod>();
    poll_until(DEFAULT_TIMEOUT, || async {
        let rs_left = replica_sets.list(&ListParams::default()).await?.items.len();
        let pods_left = pods.list(&ListParams::default()).await?.items.len();
        Ok((rs_left == 0 && pods_left == 0).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn hpa_scales_a_deployment_through_the_scale_subresource() -> anyhow::Result<()> {
    let ns = TestNamespace::new("smoke-hpa").await?;
    ns.apply(&deployment("web", 1, "nginx:1.27")).await?;
    ns.apply(
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 4
  maxReplicas: 6
"#,
    )
    .await?;
    ns.wait_for::<Deployment>("web", "the HPA to raise replicas to 4", DEFAULT_TIMEOUT, |d| {
        d.spec.as_ref().and_then(|s| s.replicas) == Some(4)
            && d.status.as_ref().and_then(|s| s.ready_replicas) == Some(4)
    })
    .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn rbac_denies_nobody_until_a_role_binding_grants_it() -> anyhow::Result<()> {
    let ns = TestNamespace::new("smoke-rbac").await?;
    let nobody = User::Nobody.client().await?;
    let pods: Api<Pod> = Api::namespaced(nobody, &ns.name);

    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("nobody listed pods: {other:?}"),
    }

    ns.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-lister}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: nobody-lists-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-lister}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: nobody}]
"#,
    )
    .await?;
    // RBAC changes reach the authorizer's cache within moments.
    poll_until(Duration::from_secs(10), || async { Ok(pods.list(&ListParams::default()).await.ok()) }).await?;
    // Exactly that: listing pods, not reading them one by one, and nothing elsewhere.
    match pods.get("anything").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("nobody could get a pod: {other:?}"),
    }
    let default_pods: Api<Pod> = Api::namespaced(User::Nobody.client().await?, "default");
    assert!(default_pods.list(&ListParams::default()).await.is_err(), "the binding leaked outside {}", ns.name);
    Ok(())
}

/// The routers' real CRDs are served (Istio's and the Gateway API's from their published
/// modules, ApisixRoute's our own schema), and a router object keeps fields we don't model.
#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_routers_crds_are_served() -> anyhow::Result<()> {
    let ns = TestNamespace::new("smoke-router-crds").await?;
    for (group, version, kind) in [
        ("networking.istio.io", "v1", "VirtualService"),
        ("networking.istio.io", "v1", "DestinationRule"),
        ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        ("gateway.networking.k8s.io", "v1", "GRPCRoute"),
        ("apisix.apache.org", "v2", "ApisixRoute"),
    ] {
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::pinned_kind(&ns.client, &gvk).await?;
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
        assert!(api.list(&ListParams::default()).await?.items.is_empty(), "{kind} listed");
    }
    ns.apply(
        r#"
apiVersion: apisix.apache.org/v2
kind: ApisixRoute
metadata: {name: web}
spec:
  http:
  - name: rule1
    match: {paths: [/*]}
    backends: [{serviceName: web-stable, servicePort: 80, weight: 100}]
    plugin_config_name: shared
"#,
    )
    .await?;
    let gvk = kube::core::GroupVersionKind::gvk("apisix.apache.org", "v2", "ApisixRoute");
    let (resource, _) = kube::discovery::pinned_kind(&ns.client, &gvk).await?;
    let route =
        Api::<kube::api::DynamicObject>::namespaced_with(ns.client.clone(), &ns.name, &resource).get("web").await?;
    assert_eq!(route.data["spec"]["http"][0]["plugin_config_name"], "shared", "unknown fields are kept");
    Ok(())
}
