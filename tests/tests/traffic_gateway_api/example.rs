//! `examples/gateway-api/canary.yaml`, applied unchanged and walked to promotion.

use super::*;
use e2e::read_repo_file;

const NAME: &str = "gateway-demo";

async fn wait_example_weights(ns: &TestNamespace, wanted: (i64, i64)) -> Result<()> {
    let services = ("gateway-demo-stable", "gateway-demo-canary");
    let what = format!("weights {wanted:?}");
    wait_route(ns, (RouteKind::HttpRoute, NAME), &what, |r| weights_of(r, services) == Some(wanted)).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_example_walks_to_promotion() -> Result<()> {
    let ns = TestNamespace::new("gateway-example").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&read_repo_file("examples/gateway-api/canary.yaml")).await?;
    ns.wait_phase(NAME, "Healthy").await?;
    wait_example_weights(&ns, (100, 0)).await?;
    let watch = ns.watch_traffic(&routing(NAME, RouteKind::HttpRoute)).await?;
    ns.set_rollout_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    wait_example_weights(&ns, (90, 10)).await?;
    ns.promote(NAME).await?;
    ns.wait_step(NAME, 3, "Paused").await?;
    wait_example_weights(&ns, (50, 50)).await?;
    ns.promote(NAME).await?;
    ns.wait_phase(NAME, "Healthy").await?;
    wait_example_weights(&ns, (100, 0)).await?;
    watch.finish().await?;
    Ok(())
}
