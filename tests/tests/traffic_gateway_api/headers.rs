//! A header rule (`setHeaderRoute`) on an HTTPRoute: before the split rule from its step, sending
//! `X-Canary: yes` to the canary alone, kept while the weights move, gone at promotion and abort.

use super::*;

const STEPS: &str = r#"[{setWeight: 20}, {setHeaderRoute: {name: header-route, match: [{headerName: X-Canary, headerValue: {exact: "yes"}}]}}, {pause: {}}]"#;
const MANAGED: &str = ", managedRoutes: [{name: header-route}]";

/// Waits until the route's rules are named `names` ("" for an unnamed rule), in order.
async fn wait_rules(ns: &TestNamespace, names: &[&str]) -> Result<Vec<Value>> {
    let named = |route: &DynamicObject| {
        let found: Vec<String> = rules(route).iter().map(|r| r["name"].as_str().unwrap_or_default().into()).collect();
        found == names
    };
    let route = wait_route(ns, (RouteKind::HttpRoute, "web"), &format!("rules {names:?}"), named).await?;
    Ok(rules(&route))
}

/// An update paused after its header step, the Services watched.
async fn header_rule_in_place(ns: &TestNamespace) -> Result<TrafficWatch> {
    ns.apply(&objects(RouteKind::HttpRoute, STEPS, MANAGED)).await?;
    ns.wait_phase("web", "Healthy").await?;
    let watch = ns.watch_traffic(&routing("web", RouteKind::HttpRoute)).await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_step("web", 2, "Paused").await?;
    let rules = wait_rules(ns, &["header-route", "", ""]).await?;
    assert_eq!(
        rules[0],
        json!({"name": "header-route",
               "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "X-Canary", "type": "Exact", "value": "yes"}]}],
               "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 1}]}),
        "the split rule's match with the header, to the canary alone"
    );
    wait_weights(ns, RouteKind::HttpRoute, (80, 20)).await?;
    Ok(watch)
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_header_rule_holds_until_promotion() -> Result<()> {
    let ns = TestNamespace::new("gateway-headers").await?;
    let _controller = ns.start_controller().await?;
    let watch = header_rule_in_place(&ns).await?;
    assert_no_write(&ns, RouteKind::HttpRoute).await?;
    ns.promote("web").await?;
    ns.wait_phase("web", "Healthy").await?;
    wait_rules(&ns, &["", ""]).await?;
    wait_weights(&ns, RouteKind::HttpRoute, (100, 0)).await?;
    watch.finish().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_takes_the_header_rule_away() -> Result<()> {
    let ns = TestNamespace::new("gateway-headers-abort").await?;
    let _controller = ns.start_controller().await?;
    let watch = header_rule_in_place(&ns).await?;
    ns.abort("web").await?;
    wait_rules(&ns, &["", ""]).await?;
    wait_weights(&ns, RouteKind::HttpRoute, (100, 0)).await?;
    watch.finish().await?;
    Ok(())
}
