//! Gateway API traffic routing end to end (`plugins."argoproj-labs/gatewayAPI"`, built in): an
//! HTTPRoute's split rule weighted through the steps and back, on promotion and on abort, the
//! in-progress label, the rules and backendRefs that aren't ours left alone, and no write once in
//! place; a GRPCRoute the same way; header rules (`headers.rs`); the example (`example.rs`). The
//! Services are watched for request safety.

mod example;
mod headers;

use anyhow::Result;
use e2e::fixtures::{gateway_api_canary, gateway_api_route};
use e2e::traffic::{Routing, TrafficWatch};
use e2e::{DEFAULT_TIMEOUT, TestNamespace, poll_until};
use kube::api::{Api, DynamicObject};
use rollouts_controller::api::RouteKind;
use serde_json::{Value, json};

const LABEL: &str = "rollouts.argoproj.io/gatewayapi-canary";

/// The route `web` of `kind` and a Rollout `web` routed through it with `steps` (see the fixtures).
fn objects(kind: RouteKind, steps: &str, extra: &str) -> String {
    let kind = kind.gvk().2;
    format!("{}---{}", gateway_api_route(kind, "web"), gateway_api_canary(kind, "web", steps, extra))
}

fn routes(ns: &TestNamespace, kind: RouteKind) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, &kind.api_resource())
}

fn rules(route: &DynamicObject) -> Vec<Value> {
    route.data["spec"]["rules"].as_array().cloned().unwrap_or_default()
}

/// (stable, canary) weights of the first rule that sends to both Services (1 when absent).
fn weights_of(route: &DynamicObject, (stable, canary): (&str, &str)) -> Option<(i64, i64)> {
    let weight_of = |rule: &Value, name: &str| {
        let refs = rule["backendRefs"].as_array()?;
        refs.iter().find(|b| b["name"] == name).map(|b| b["weight"].as_i64().unwrap_or(1))
    };
    rules(route).iter().find_map(|rule| Some((weight_of(rule, stable)?, weight_of(rule, canary)?)))
}

fn weights(route: &DynamicObject) -> Option<(i64, i64)> {
    weights_of(route, ("web-stable", "web-canary"))
}

fn label(route: &DynamicObject) -> Option<&str> {
    route.metadata.labels.as_ref()?.get(LABEL).map(String::as_str)
}

/// Waits until the route `name` satisfies `done`.
async fn wait_route(
    ns: &TestNamespace,
    (kind, name): (RouteKind, &str),
    what: &str,
    done: impl Fn(&DynamicObject) -> bool,
) -> Result<DynamicObject> {
    poll_until(DEFAULT_TIMEOUT, || async {
        let route = routes(ns, kind).get(name).await?;
        Ok(done(&route).then_some(route))
    })
    .await
    .map_err(|e| e.context(format!("waiting for the {} to have {what}", kind.gvk().2)))
}

/// Waits for the weights, the in-progress label on while the canary has weight.
async fn wait_weights(ns: &TestNamespace, kind: RouteKind, (stable, canary): (i64, i64)) -> Result<DynamicObject> {
    let labelled = if canary > 0 { Some("in-progress") } else { None };
    wait_route(ns, (kind, "web"), &format!("weights {stable}/{canary}, label {labelled:?}"), |route| {
        weights(route) == Some((stable, canary)) && label(route) == labelled
    })
    .await
}

/// Reconciles the Rollout twice (a spec change each: the controller observes them) and checks the
/// route wasn't written.
async fn assert_no_write(ns: &TestNamespace, kind: RouteKind) -> Result<()> {
    let before = routes(ns, kind).get("web").await?.metadata.resource_version;
    for limit in [8, 9] {
        ns.patch_spec("web", json!({"spec": {"revisionHistoryLimit": limit}})).await?;
        ns.wait_observed("web", None).await?;
    }
    let after = routes(ns, kind).get("web").await?.metadata.resource_version;
    assert_eq!(after, before, "the route was written though it held what was wanted");
    Ok(())
}

/// The Services `name`-stable and `name`-canary, weighed by the route `name` of `kind`.
fn routing(name: &str, kind: RouteKind) -> Routing {
    Routing::services(&format!("{name}-stable"), &format!("{name}-canary")).through(kind.gvk().2, name)
}

const STEPS: &str = "[{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {}}]";

/// A healthy Rollout routed through the route of `kind`, its update started (the Services
/// watched from then on) and paused at 20%; the route as it was when healthy.
async fn paused_at_twenty(ns: &TestNamespace, kind: RouteKind) -> Result<(DynamicObject, TrafficWatch)> {
    ns.apply(&objects(kind, STEPS, "")).await?;
    ns.wait_phase("web", "Healthy").await?;
    let initial = wait_weights(ns, kind, (100, 0)).await?;
    let watch = ns.watch_traffic(&routing("web", kind)).await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_step("web", 1, "Paused").await?;
    wait_weights(ns, kind, (80, 20)).await?;
    Ok((initial, watch))
}

/// A Rollout routed through the route of `kind` walked through its steps to promotion: the
/// weights and label at each step, nothing written once in place, the rest of the route untouched.
async fn walk_to_promotion(test: &str, kind: RouteKind) -> Result<()> {
    let ns = TestNamespace::new(test).await?;
    let _controller = ns.start_controller().await?;
    let (initial, watch) = paused_at_twenty(&ns, kind).await?;
    assert_no_write(&ns, kind).await?;
    ns.promote("web").await?;
    ns.wait_step("web", 3, "Paused").await?;
    wait_weights(&ns, kind, (50, 50)).await?;
    ns.promote("web").await?;
    ns.wait_phase("web", "Healthy").await?;
    let done = wait_weights(&ns, kind, (100, 0)).await?;
    watch.finish().await?;
    assert_no_write(&ns, kind).await?;

    let (before, after) = (rules(&initial), rules(&done));
    assert_eq!(after[1], before[1], "the foreign rule is untouched");
    assert_eq!(after[0]["backendRefs"][2], before[0]["backendRefs"][2], "and the foreign backendRef");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn an_http_route_follows_the_steps_and_leaves_the_rest_alone() -> Result<()> {
    walk_to_promotion("gateway-http", RouteKind::HttpRoute).await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_grpc_route_follows_the_steps_and_leaves_the_rest_alone() -> Result<()> {
    walk_to_promotion("gateway-grpc", RouteKind::GrpcRoute).await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_sends_the_http_route_back_to_stable() -> Result<()> {
    let ns = TestNamespace::new("gateway-abort").await?;
    let _controller = ns.start_controller().await?;
    let (_, watch) = paused_at_twenty(&ns, RouteKind::HttpRoute).await?;
    ns.abort("web").await?;
    wait_weights(&ns, RouteKind::HttpRoute, (100, 0)).await?;
    ns.wait_phase("web", "Degraded").await?;
    watch.finish().await?;
    Ok(())
}
