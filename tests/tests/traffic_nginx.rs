//! ingress-nginx traffic routing end to end: the canary Ingress made from the stable Ingress,
//! weighted through the steps and back, with the Services watched for request safety, and what
//! isn't ours left alone.

use anyhow::Result;
use e2e::traffic::Routing;
use e2e::{DEFAULT_TIMEOUT, TestNamespace, poll_until};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web-stable}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {team: shop}}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-stable, port: {number: 80}}}}
      - {path: /admin, pathType: Prefix, backend: {service: {name: admin, port: {number: 80}}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.26"}]}
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      trafficRouting:
        nginx:
          stableIngress: web
          additionalIngressAnnotations: {canary-by-header: X-Canary}
      steps: [{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {}}]
"#;

async fn canary_annotation(ns: &TestNamespace, key: &str) -> Result<Option<String>> {
    let ingress = ns.api::<Ingress>().get_opt("web-web-canary").await?;
    Ok(ingress.and_then(|i| i.metadata.annotations?.get(key).cloned()))
}

async fn canary_weight(ns: &TestNamespace) -> Result<Option<String>> {
    canary_annotation(ns, WEIGHT).await
}

async fn wait_weight(ns: &TestNamespace, wanted: &str) -> Result<()> {
    poll_until(DEFAULT_TIMEOUT, || async { Ok((canary_weight(ns).await?.as_deref() == Some(wanted)).then_some(())) })
        .await
        .map_err(|e| e.context(format!("canary Ingress weight {wanted}")))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_canary_ingress_follows_the_steps_and_leaves_the_rest_alone() -> Result<()> {
    let ns = TestNamespace::new("nginx-canary").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(OBJECTS).await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weight(&ns, "0").await?;
    let canary = ns.api::<Ingress>().get("web-web-canary").await?;
    assert_eq!(canary.metadata.owner_references.as_ref().map(|o| o[0].kind.as_str()), Some("Rollout"));
    assert_eq!(
        serde_json::to_value(&canary.spec)?["rules"],
        json!([{"host": "shop.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}}
        ]}}]),
        "only the path to the stable Service, sent to the canary Service"
    );
    // Someone else's annotation on our Ingress, and on the stable one, stay.
    let foreign = json!({"metadata": {"annotations": {"example.com/owner": "platform"}}});
    for name in ["web-web-canary", "web"] {
        ns.api::<Ingress>().patch(name, &PatchParams::default(), &Patch::Merge(&foreign)).await?;
    }

    let routing = Routing::services("web-stable", "web-canary");
    let watch = ns.watch_traffic(&routing).await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_step("web", 1, "Paused").await?;
    wait_weight(&ns, "20").await?;
    ns.promote("web").await?;
    ns.wait_step("web", 3, "Paused").await?;
    wait_weight(&ns, "50").await?;
    ns.promote("web").await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weight(&ns, "0").await?;
    watch.finish().await?;

    for name in ["web-web-canary", "web"] {
        let ingress = ns.api::<Ingress>().get(name).await?;
        let annotations = ingress.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.get("example.com/owner").map(String::as_str), Some("platform"), "{name}");
    }
    let stable = serde_json::to_value(ns.api::<Ingress>().get("web").await?.spec)?;
    assert_eq!(stable["rules"][0]["http"]["paths"][1]["backend"]["service"]["name"], Value::from("admin"));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_missing_stable_ingress_is_invalid_and_nothing_is_created() -> Result<()> {
    let ns = TestNamespace::new("nginx-missing").await?;
    let _controller = ns.start_controller().await?;
    let without_ingress: Vec<&str> = OBJECTS.split("---").filter(|doc| !doc.contains("kind: Ingress")).collect();
    ns.apply(&without_ingress.join("---")).await?;
    let invalid = ns.wait_phase("web", "Degraded").await?;
    let message = invalid.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.contains(
            "spec.strategy.canary.trafficRouting.nginx.stableIngress: Invalid value: \"web\": Ingress \"web\" not found"
        ),
        "{message}"
    );
    assert!(ns.replica_sets().await?.is_empty());
    assert!(ns.api::<Ingress>().list(&Default::default()).await?.items.is_empty());
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn weights_count_in_max_traffic_weight_and_nginx_is_told_the_total() -> Result<()> {
    const TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
    let ns = TestNamespace::new("nginx-max-weight").await?;
    let _controller = ns.start_controller().await?;
    let per_mille = OBJECTS
        .replace("        nginx:\n", "        maxTrafficWeight: 1000\n        nginx:\n")
        .replace("{setWeight: 20}", "{setWeight: 5}")
        .replace("{setWeight: 50}", "{setWeight: 500}");
    ns.apply(&per_mille).await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weight(&ns, "0").await?;
    assert_eq!(canary_annotation(&ns, TOTAL).await?.as_deref(), Some("1000"));

    let routing = Routing::services("web-stable", "web-canary");
    let watch = ns.watch_traffic(&routing).await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    for (step, weight) in [(1, 5), (3, 500)] {
        let paused = ns.wait_step("web", step, "Paused").await?;
        let annotations = (canary_weight(&ns).await?, canary_annotation(&ns, TOTAL).await?);
        assert_eq!(annotations, (Some(weight.to_string()), Some("1000".into())), "step {step}");
        let recorded = paused.status.and_then(|s| s.canary?.weights).map(|w| (w.canary.weight, w.stable.weight));
        assert_eq!(recorded, Some((weight, 1000 - weight)), "status weights add up to the total");
        ns.promote("web").await?;
    }
    ns.wait_phase("web", "Healthy").await?;
    wait_weight(&ns, "0").await?;
    watch.finish().await?;

    // Back to the default total: ingress-nginx's own, so the annotation goes.
    let steps = json!([{"setWeight": 20}, {"pause": {}}]);
    let canary = json!({"trafficRouting": {"maxTrafficWeight": null}, "steps": steps});
    ns.patch_spec("web", json!({"spec": {"strategy": {"canary": canary}}})).await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok(canary_annotation(&ns, TOTAL).await?.is_none().then_some(())) })
        .await
        .map_err(|e| e.context("canary-weight-total removed"))?;
    assert_eq!(canary_weight(&ns).await?.as_deref(), Some("0"));
    Ok(())
}

/// The Rollout of `OBJECTS` routed by Istio in the mesh as well as by NGINX at the edge.
const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: primary
    route:
    - {destination: {host: web-stable}, weight: 100}
    - {destination: {host: web-canary}, weight: 0}
"#;

async fn mesh_weight(ns: &TestNamespace) -> Result<Option<String>> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk));
    let vs = api.get("web").await?;
    Ok(vs.data["spec"]["http"][0]["route"][1]["weight"].as_i64().map(|w| w.to_string()))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn istio_and_nginx_on_one_rollout_move_together() -> Result<()> {
    let ns = TestNamespace::new("nginx-and-istio").await?;
    let _controller = ns.start_controller().await?;
    let both = OBJECTS.replace(
        "        nginx:\n",
        "        istio: {virtualService: {name: web, routes: [primary]}}\n        nginx:\n",
    );
    ns.apply(MESH).await?;
    ns.apply(&both).await?;
    ns.wait_phase("web", "Healthy").await?;
    let routing = Routing::services("web-stable", "web-canary").through("VirtualService", "web");
    let watch = ns.watch_traffic(&routing).await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    for (step, weight) in [(1, "20"), (3, "50")] {
        let paused = ns.wait_step("web", step, "Paused").await?;
        // The step is done only once both routers hold its weight.
        assert_eq!(
            (canary_weight(&ns).await?.as_deref(), mesh_weight(&ns).await?.as_deref()),
            (Some(weight), Some(weight)),
            "step {step}"
        );
        let recorded = paused.status.and_then(|s| s.canary?.weights).map(|w| w.canary.weight);
        assert_eq!(recorded.map(|w| w.to_string()).as_deref(), Some(weight));
        ns.promote("web").await?;
    }
    ns.wait_phase("web", "Healthy").await?;
    wait_weight(&ns, "0").await?;
    assert_eq!(mesh_weight(&ns).await?.as_deref(), Some("0"));
    watch.finish().await?;
    Ok(())
}
