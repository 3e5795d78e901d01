//! Header routes through Istio end to end: `examples/istio/header-route-ab.yaml` applied
//! unchanged; the header route on top of the VirtualService from its step, kept while the weights
//! move, gone at the end and on abort, with the Services watched for request safety.

use anyhow::Result;
use e2e::traffic::{Routing, TrafficWatch};
use e2e::{DEFAULT_TIMEOUT, TestNamespace, poll_until, read_repo_file};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

const EXAMPLE: &str = "examples/istio/header-route-ab.yaml";

fn routing() -> Routing {
    Routing::services("ab-demo-stable", "ab-demo-canary").through("VirtualService", "ab-demo")
}

async fn http_routes(ns: &TestNamespace) -> Result<Vec<Value>> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk));
    let vs = api.get("ab-demo").await?;
    Ok(vs.data["spec"]["http"].as_array().cloned().unwrap_or_default())
}

/// Waits until the VirtualService's HTTP routes are named `names`, in order.
async fn wait_routes(ns: &TestNamespace, names: &[&str]) -> Result<Vec<Value>> {
    poll_until(DEFAULT_TIMEOUT, || async {
        let routes = http_routes(ns).await?;
        let found: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap_or_default()).collect();
        Ok((found == names).then_some(routes))
    })
    .await
    .map_err(|e| e.context(format!("VirtualService routes {names:?}")))
}

/// Starts an update of the healthy example, watched for request safety, and waits for its header
/// route.
async fn header_route_in_place(ns: &TestNamespace) -> Result<TrafficWatch> {
    ns.apply(&read_repo_file(EXAMPLE)).await?;
    ns.wait_phase("ab-demo", "Healthy").await?;
    let watch = ns.watch_traffic(&routing()).await?;
    ns.set_rollout_image("ab-demo", "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step("ab-demo", 2, "Paused").await?;
    let routes = wait_routes(ns, &["insiders", "primary"]).await?;
    assert_eq!(
        routes[0],
        json!({"name": "insiders", "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
               "route": [{"destination": {"host": "ab-demo-canary"}, "weight": 100}]})
    );
    assert_eq!(routes[1]["route"][1]["weight"], json!(0), "no share of everyone's traffic yet");
    Ok(watch)
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_header_route_holds_through_the_weights_and_goes_at_the_end() -> Result<()> {
    let ns = TestNamespace::new("istio-headers").await?;
    let _controller = ns.start_controller().await?;
    let watch = header_route_in_place(&ns).await?;
    ns.promote("ab-demo").await?;
    ns.wait_step("ab-demo", 5, "Paused").await?;
    let routes = wait_routes(&ns, &["insiders", "primary"]).await?;
    assert_eq!(routes[1]["route"][1]["weight"], json!(20));
    ns.promote("ab-demo").await?;
    ns.wait_phase("ab-demo", "Healthy").await?;
    let routes = wait_routes(&ns, &["primary"]).await?;
    assert_eq!(routes[0]["route"][0]["weight"], json!(100));
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_takes_the_header_route_away() -> Result<()> {
    let ns = TestNamespace::new("istio-headers-abort").await?;
    let _controller = ns.start_controller().await?;
    let watch = header_route_in_place(&ns).await?;
    ns.abort("ab-demo").await?;
    ns.wait_phase("ab-demo", "Degraded").await?;
    wait_routes(&ns, &["primary"]).await?;
    watch.finish().await?;
    Ok(())
}
