//! No router writes when nothing changed: 100 healthy Rollouts, 25 per router (Istio, NGINX,
//! APISIX, the Gateway API; the harness's nodes hold 330 pods), each reconciled again twice; the
//! second round makes no write at all. The first round takes whatever was still in flight.

use anyhow::{Result, ensure};
use e2e::process::{counter, counter_samples, http_get};
use e2e::rollouts::phase;
use e2e::{TestNamespace, poll_until};
use futures::{StreamExt, TryStreamExt, stream};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use rollouts_controller::api::Rollout;
use std::net::SocketAddr;
use std::time::Duration;

const PER_ROUTER: usize = 25;
const ROUTERS: [&str; 4] = ["istio", "nginx", "apisix", "gateway"];

/// The Services, the router's object and the Rollout of Rollout `name` routed by `router`.
fn objects(router: &str, name: &str) -> String {
    let (stable, canary) = (format!("{name}-stable"), format!("{name}-canary"));
    let (route, routing) = match router {
        "istio" => (
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{hosts: [{name}], http: [{{name: primary, route: [{{destination: {{host: {stable}}}, weight: 100}}, {{destination: {{host: {canary}}}, weight: 0}}]}}]}}"
            ),
            format!("istio: {{virtualService: {{name: {name}, routes: [primary]}}}}"),
        ),
        "nginx" => (
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec: {{ingressClassName: nginx, rules: [{{host: {name}.example, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {stable}, port: {{number: 80}}}}}}}}]}}}}]}}"
            ),
            format!("nginx: {{stableIngress: {name}}}"),
        ),
        "apisix" => (
            format!(
                "apiVersion: apisix.apache.org/v2\nkind: ApisixRoute\nmetadata: {{name: {name}}}\nspec: {{http: [{{name: {name}, match: {{paths: [/*], hosts: [{name}.example]}}, backends: [{{serviceName: {stable}, servicePort: 80}}, {{serviceName: {canary}, servicePort: 80}}]}}]}}"
            ),
            format!("apisix: {{route: {{name: {name}}}}}"),
        ),
        _ => (
            format!(
                "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\nspec: {{parentRefs: [{{name: gateway}}], rules: [{{backendRefs: [{{name: {stable}, port: 80}}, {{name: {canary}, port: 80}}]}}]}}"
            ),
            format!("plugins: {{argoproj-labs/gatewayAPI: {{httpRoute: {name}}}}}"),
        ),
    };
    let service = |service: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {service}}}\nspec: {{clusterIP: None, selector: {{app: {name}}}, ports: [{{port: 80}}]}}"
        )
    };
    format!(
        "{}\n---\n{}\n---\n{route}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: app, image: \"nginx:1.26\"}}]}}\n  strategy:\n    canary:\n      stableService: {stable}\n      canaryService: {canary}\n      trafficRouting: {{{routing}}}\n      steps: [{{setWeight: 50}}, {{pause: {{}}}}]\n",
        service(&stable),
        service(&canary),
    )
}

async fn metrics(admin: SocketAddr) -> Result<String> {
    Ok(http_get(admin, "/metrics").await?.1)
}

/// Every Rollout annotated with `round`, then waits until the controller reconciled as many times.
async fn reconcile_all(ns: &TestNamespace, admin: SocketAddr, names: &[String], round: usize) -> Result<()> {
    let before = counter(&metrics(admin).await?, "rollouts_controller_reconciles")?;
    let patch = serde_json::json!({"metadata": {"annotations": {"e2e.rollouts.local/round": round.to_string()}}});
    let rollouts = ns.api::<Rollout>();
    stream::iter(names)
        .map(|name| {
            let (rollouts, patch) = (rollouts.clone(), &patch);
            async move { rollouts.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let wanted = before + names.len() as f64;
    poll_until(Duration::from_secs(120), || async {
        Ok((counter(&metrics(admin).await?, "rollouts_controller_reconciles")? >= wanted).then_some(()))
    })
    .await
}

/// Successful writes so far, by object kind.
async fn writes(admin: SocketAddr) -> Result<Vec<(Vec<String>, f64)>> {
    counter_samples(&metrics(admin).await?, "rollouts_controller_writes")
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn no_router_writes_when_nothing_changed() -> Result<()> {
    let ns = TestNamespace::new("routers-idle").await?;
    let controller = ns.start_controller().await?;
    let names: Vec<String> =
        ROUTERS.iter().flat_map(|router| (0..PER_ROUTER).map(move |i| format!("{router}-{i}"))).collect();
    stream::iter(&names)
        .map(|name| {
            let router = name.split('-').next().unwrap_or_default();
            let yaml = objects(router, name);
            let ns = &ns;
            async move { ns.apply(&yaml).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let all_healthy = poll_until(Duration::from_secs(300), || async {
        let rollouts = ns.api::<Rollout>().list(&ListParams::default()).await?.items;
        let healthy = rollouts.iter().filter(|r| phase(r) == "Healthy").count();
        Ok((healthy == names.len()).then_some(()))
    })
    .await;
    if let Err(error) = all_healthy {
        let rollouts = ns.api::<Rollout>().list(&ListParams::default()).await?.items;
        let stuck: Vec<String> = (rollouts.iter().filter(|r| phase(r) != "Healthy").take(5))
            .map(|r| format!("{}: {:?}", r.name_any(), r.status.as_ref().and_then(|s| s.message.clone())))
            .collect();
        return Err(error.context(format!("not all Healthy, e.g. {stuck:?}")));
    }

    reconcile_all(&ns, controller.admin, &names, 1).await?;
    let settled = writes(controller.admin).await?;
    reconcile_all(&ns, controller.admin, &names, 2).await?;
    let after = writes(controller.admin).await?;
    ensure!(after == settled, "writes while nothing changed:\nbefore {settled:?}\nafter  {after:?}");
    let rollouts = ns.api::<Rollout>().list(&ListParams::default()).await?.items;
    ensure!(rollouts.iter().all(|r| r.annotations().contains_key("e2e.rollouts.local/round")));
    Ok(())
}
