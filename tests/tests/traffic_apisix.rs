//! APISIX traffic routing end to end: the ApisixRoute's backend weights through the steps and
//! back, at abort, with the Services and weights watched for request safety; what isn't ours
//! left alone and nothing written once settled; a header route as an ApisixRoute of its own; a
//! missing route InvalidSpec; the APISIX examples applied unchanged.

use anyhow::{Context, Result, ensure};
use e2e::controller::RunningController;
use e2e::process::{counter, http_get};
use e2e::rollouts::{phase, status};
use e2e::traffic::{Routing, TrafficWatch};
use e2e::{DEFAULT_TIMEOUT, TestNamespace, poll_until, read_repo_file};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

const STEPS: &str = "[{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {}}]";

/// Services, the ApisixRoute `web` (rule `primary` to both Services and a mirror, rule `admin`
/// elsewhere) and the Rollout `web` weighing `primary`, with `steps` and `routing` added to its
/// trafficRouting.
fn objects(steps: &str, routing: &str) -> String {
    r#"
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
apiVersion: apisix.apache.org/v2
kind: ApisixRoute
metadata: {name: web}
spec:
  http:
  - name: primary
    match: {paths: ["/*"], hosts: [shop.example]}
    backends:
    - {serviceName: web-stable, servicePort: 80}
    - {serviceName: web-canary, servicePort: 80}
    - {serviceName: mirror, servicePort: 80, weight: 1}
  - name: admin
    match: {paths: ["/admin"]}
    backends: [{serviceName: admin, servicePort: 80}]
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
      trafficRouting: {apisix: {route: {name: web, rules: [primary]}}ROUTING}
      steps: STEPS
"#
    .replace("STEPS", steps)
    .replace("ROUTING", routing)
}

fn routing(prefix: &str) -> Routing {
    Routing::services(&format!("{prefix}-stable"), &format!("{prefix}-canary")).through("ApisixRoute", prefix)
}

fn routes(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("apisix.apache.org", "v2", "ApisixRoute");
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

/// (stable, canary) weights of the first rule of `route`, its first two backends.
async fn weights(ns: &TestNamespace, route: &str) -> Result<(Option<i64>, Option<i64>)> {
    let route = routes(ns).get(route).await?;
    let backends = &route.data["spec"]["http"][0]["backends"];
    Ok((backends[0]["weight"].as_i64(), backends[1]["weight"].as_i64()))
}

async fn wait_weights(ns: &TestNamespace, route: &str, (stable, canary): (i64, i64)) -> Result<()> {
    let wanted = (Some(stable), Some(canary));
    poll_until(DEFAULT_TIMEOUT, || async { Ok((weights(ns, route).await? == wanted).then_some(())) })
        .await
        .map_err(|e| e.context(format!("ApisixRoute {route} weights {stable}/{canary}")))
}

async fn reconciles(controller: &RunningController) -> Result<f64> {
    let (_, metrics) = http_get(controller.admin, "/metrics").await?;
    counter(&metrics, "rollouts_controller_reconciles")
}

/// Reconciles of a settled Rollout, each woken by an annotation, write nothing to its route.
async fn settled_writes_nothing(
    ns: &TestNamespace,
    controller: &RunningController,
    (rollout, route): (&str, &str),
) -> Result<()> {
    let version = routes(ns).get(route).await?.metadata.resource_version;
    for poke in 0..3 {
        let before = reconciles(controller).await?;
        ns.patch_spec(rollout, json!({"metadata": {"annotations": {"e2e.example/poke": poke.to_string()}}})).await?;
        poll_until(DEFAULT_TIMEOUT, || async { Ok((reconciles(controller).await? > before).then_some(())) }).await?;
    }
    let after = routes(ns).get(route).await?.metadata.resource_version;
    ensure!(after == version, "the settled route was written: resourceVersion {version:?} -> {after:?}");
    Ok(())
}

/// `objects` with STEPS applied and updated: paused at 20 %, the traffic watched.
async fn at_first_weight(test: &str) -> Result<(TestNamespace, RunningController, TrafficWatch)> {
    let ns = TestNamespace::new(test).await?;
    let controller = ns.start_controller().await?;
    ns.apply(&objects(STEPS, "")).await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weights(&ns, "web", (100, 0)).await?;
    let watch = ns.watch_traffic(&routing("web")).await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_step("web", 1, "Paused").await?;
    wait_weights(&ns, "web", (80, 20)).await?;
    Ok((ns, controller, watch))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_route_follows_the_steps_and_leaves_the_rest_alone() -> Result<()> {
    let (ns, controller, watch) = at_first_weight("apisix-canary").await?;
    ns.promote("web").await?;
    ns.wait_step("web", 3, "Paused").await?;
    wait_weights(&ns, "web", (50, 50)).await?;
    ns.promote("web").await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weights(&ns, "web", (100, 0)).await?;
    let states = watch.finish().await?;
    ensure!(states.iter().any(|(_, s)| s.weights == Some((50, 50))), "the watch saw no 50/50: {states:#?}");

    let route = routes(&ns).get("web").await?;
    let http = &route.data["spec"]["http"];
    assert_eq!(http[0]["backends"][2], json!({"serviceName": "mirror", "servicePort": 80, "weight": 1}));
    assert_eq!(
        http[1],
        json!({"name": "admin", "match": {"paths": ["/admin"]}, "backends": [{"serviceName": "admin", "servicePort": 80}]})
    );
    settled_writes_nothing(&ns, &controller, ("web", "web")).await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_returns_the_weights_to_the_stable() -> Result<()> {
    let (ns, _controller, watch) = at_first_weight("apisix-abort").await?;
    ns.abort("web").await?;
    ns.wait_phase("web", "Degraded").await?;
    wait_weights(&ns, "web", (100, 0)).await?;
    watch.finish().await?;
    Ok(())
}

const HEADER_STEPS: &str = r#"[{setWeight: 20},
  {setHeaderRoute: {name: header-route, match: [{headerName: X-Canary, headerValue: {exact: "yes"}}]}},
  {pause: {}}, {setWeight: 50}, {pause: {}}]"#;

/// Waits until the header route exists (with its spec) or, with `None`, is gone.
async fn wait_header_route(ns: &TestNamespace, present: bool) -> Result<Option<DynamicObject>> {
    poll_until(DEFAULT_TIMEOUT, || async {
        let route = routes(ns).get_opt("header-route").await?;
        Ok((route.is_some() == present).then_some(route))
    })
    .await
    .map_err(|e| e.context(format!("header-route {}", if present { "created" } else { "deleted" })))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_header_route_is_an_apisix_route_of_its_own_until_promotion_or_abort() -> Result<()> {
    let ns = TestNamespace::new("apisix-header").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&objects(HEADER_STEPS, ", managedRoutes: [{name: header-route}]")).await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weights(&ns, "web", (100, 0)).await?;
    ensure!(routes(&ns).get_opt("header-route").await?.is_none(), "a header route while healthy");
    let watch = ns.watch_traffic(&routing("web")).await?;

    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_step("web", 2, "Paused").await?;
    let route = wait_header_route(&ns, true).await?.context("header-route")?;
    let owner = route.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    assert_eq!(owner.map(|o| (o.kind.as_str(), o.name.as_str())), Some(("Rollout", "web")));
    assert_eq!(
        route.data["spec"],
        json!({"http": [{"name": "primary", "priority": 1,
            "match": {"paths": ["/*"], "hosts": ["shop.example"],
                "exprs": [{"subject": {"scope": "Header", "name": "X-Canary"}, "op": "Equal", "value": "yes"}]},
            "backends": [{"serviceName": "web-canary", "servicePort": 80, "weight": 100}]}]})
    );
    wait_weights(&ns, "web", (80, 20)).await?;
    ns.promote("web").await?;
    ns.wait_step("web", 4, "Paused").await?;
    wait_weights(&ns, "web", (50, 50)).await?;
    ensure!(routes(&ns).get_opt("header-route").await?.is_some(), "the header route went before the last step");
    ns.promote("web").await?;
    wait_header_route(&ns, false).await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weights(&ns, "web", (100, 0)).await?;

    // The next update's header route goes at abort.
    ns.set_rollout_image("web", "web", "nginx:1.28").await?;
    ns.wait_step("web", 2, "Paused").await?;
    wait_header_route(&ns, true).await?;
    ns.abort("web").await?;
    wait_header_route(&ns, false).await?;
    ns.wait_phase("web", "Degraded").await?;
    wait_weights(&ns, "web", (100, 0)).await?;
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_missing_route_is_invalid_and_nothing_is_created() -> Result<()> {
    let ns = TestNamespace::new("apisix-missing").await?;
    let _controller = ns.start_controller().await?;
    let objects = objects(STEPS, "");
    let without_route: Vec<&str> = objects.split("---").filter(|doc| !doc.contains("kind: ApisixRoute")).collect();
    ns.apply(&without_route.join("---")).await?;
    // A controller that just started says the CRD is missing until it has looked for it.
    let expected =
        "spec.strategy.canary.trafficRouting.apisix.route.name: Invalid value: \"web\": ApisixRoute \"web\" not found";
    ns.wait_rollout("web", "InvalidSpec naming the route", |r| {
        status(r).message.is_some_and(|m| m.contains(expected)) && phase(r) == "Degraded"
    })
    .await?;
    ensure!(ns.replica_sets().await?.is_empty());
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_manual_example_walks_its_steps_aborts_and_promotes_full() -> Result<()> {
    let ns = TestNamespace::new("apisix-manual").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&read_repo_file("examples/apisix/canary-manual.yaml")).await?;
    ns.wait_phase("error-page", "Healthy").await?;
    wait_weights(&ns, "error-page", (100, 0)).await?;
    let watch = ns.watch_traffic(&routing("error-page")).await?;
    ns.set_rollout_image("error-page", "error-page", "nginx:1.27").await?;
    ns.wait_step("error-page", 1, "Paused").await?;
    wait_weights(&ns, "error-page", (90, 10)).await?;
    ns.promote("error-page").await?;
    ns.wait_step("error-page", 3, "Paused").await?;
    wait_weights(&ns, "error-page", (0, 100)).await?;
    // The demo's "percentage 0".
    ns.abort("error-page").await?;
    ns.wait_phase("error-page", "Degraded").await?;
    wait_weights(&ns, "error-page", (100, 0)).await?;
    ns.retry("error-page").await?;
    ns.wait_step("error-page", 1, "Paused").await?;
    wait_weights(&ns, "error-page", (90, 10)).await?;
    // The demo's "100 %": promote --full.
    ns.patch_status("error-page", json!({"status": {"promoteFull": true}})).await?;
    let done = ns.wait_phase("error-page", "Healthy").await?;
    wait_weights(&ns, "error-page", (100, 0)).await?;
    let status = done.status.unwrap_or_default();
    ensure!(status.stable_rs == status.current_pod_hash, "the new version is stable: {status:?}");
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_flagger_example_applies_and_writes_its_weights() -> Result<()> {
    let ns = TestNamespace::new("apisix-flagger").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&read_repo_file("examples/apisix/podinfo-canary.yaml")).await?;
    ns.wait_phase("podinfo", "Healthy").await?;
    wait_weights(&ns, "podinfo", (100, 0)).await?;
    let route = routes(&ns).get("podinfo").await?;
    let rule: &Value = &route.data["spec"]["http"][0];
    assert_eq!(rule["name"], "method");
    assert_eq!(rule["plugins"][0]["config"], json!({"disable": false, "prefer_name": true}));
    Ok(())
}

/// A restarted controller knows the router's API before its first reconcile: a healthy APISIX
/// Rollout is never told, even for a moment, that the ApisixRoute CRD is missing.
#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_restart_never_reports_the_crd_missing() -> Result<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let ns = TestNamespace::new("apisix-restart").await?;
    let controller = ns.start_controller().await?;
    ns.apply(&objects(STEPS, "")).await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_weights(&ns, "web", (100, 0)).await?;
    controller.stop().await?;

    // Every state the Rollout is in from here on.
    let config = watcher::Config::default().fields("metadata.name=web");
    let statuses = watcher(ns.api::<rollouts_controller::api::Rollout>(), config).applied_objects();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let watching = tokio::spawn(statuses.for_each(move |rollout| {
        if let Ok(rollout) = rollout {
            record.lock().unwrap_or_else(|p| p.into_inner()).push((phase(&rollout), status(&rollout).message));
        }
        async {}
    }));
    let controller = ns.start_controller().await?;
    // Its admin server listens once it has started.
    let before = poll_until(DEFAULT_TIMEOUT, || async { Ok(reconciles(&controller).await.ok()) }).await?;
    ns.patch_spec("web", json!({"metadata": {"annotations": {"e2e.example/poke": "restart"}}})).await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok((reconciles(&controller).await? > before).then_some(())) }).await?;
    watching.abort();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ensure!(!seen.is_empty(), "the watch saw no Rollout");
    let missing = seen
        .iter()
        .find(|(phase, message)| phase != "Healthy" || message.as_deref().is_some_and(|m| m.contains("serves no")));
    ensure!(missing.is_none(), "after the restart the Rollout was {missing:?} (every state: {seen:?})");
    Ok(())
}
