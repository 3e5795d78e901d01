//! A router whose CRD the cluster doesn't serve: the GRPCRoute CRD is deleted, a Rollout using a
//! GRPCRoute is `InvalidSpec` naming the CRD while an HTTPRoute Rollout beside it carries on, and
//! once the CRD is back (the controller looks for it every 10 s) the first one proceeds. The CRD
//! is put back however the test ends. One test in a binary of its own: cargo runs test binaries
//! one after another, so no other test uses GRPCRoutes meanwhile.

use std::path::PathBuf;

use anyhow::{Context, Result};
use e2e::fixtures::{gateway_api_canary, gateway_api_route};
use e2e::rollouts::{phase, status};
use e2e::{TestNamespace, kubeconfig_path, kubectl_ok, pinned_versions, testbin_dir};
use kube::api::{Api, DynamicObject};
use rollouts_controller::api::RouteKind;

const CRD: &str = "grpcroutes.gateway.networking.k8s.io";
const STEPS: &str = "[{setWeight: 20}, {pause: {}}]";

/// The GRPCRoute CRD as `tests/cluster/crds.sh` applies it, from the cache `make cluster-build` fills.
fn crd_file() -> Result<PathBuf> {
    let version =
        pinned_versions()?.remove("GATEWAY_API_VERSION").context("versions.env has no GATEWAY_API_VERSION")?;
    let root = testbin_dir()?.parent().context("the testbin directory has a parent")?.to_path_buf();
    Ok(root.join(format!("gateway-api-{version}-crds/gateway.networking.k8s.io_grpcroutes.yaml")))
}

/// The arguments that apply the CRD as crds.sh does, and wait until it is served.
fn apply_args(file: &str) -> [Vec<String>; 2] {
    let apply = ["apply", "--server-side", "--force-conflicts", "--field-manager=rollouts-test-harness", "-f", file];
    let wait = ["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{CRD}")].map(String::from);
    [apply.map(String::from).to_vec(), wait.to_vec()]
}

async fn restore_crd() -> Result<()> {
    let file = crd_file()?.display().to_string();
    for args in apply_args(&file) {
        kubectl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).await?;
    }
    Ok(())
}

/// Puts the CRD back when dropped, on every way out of the test (a blocking kubectl: Drop can't await).
struct RestoreCrd;

impl Drop for RestoreCrd {
    fn drop(&mut self) {
        let (Ok(file), Ok(testbin)) = (crd_file(), testbin_dir()) else { return };
        for args in apply_args(&file.display().to_string()) {
            let output = std::process::Command::new(testbin.join("kubectl"))
                .arg("--kubeconfig")
                .arg(kubeconfig_path())
                .args(&args)
                .output();
            if !output.as_ref().is_ok_and(|o| o.status.success()) {
                eprintln!("could not restore the CRD {CRD}: kubectl {}: {output:?}", args.join(" "));
            }
        }
    }
}

fn canary_weight(route: &DynamicObject) -> Option<i64> {
    route.data["spec"]["rules"][0]["backendRefs"][1]["weight"].as_i64()
}

/// Waits until the Rollout `name` is paused at 20% with its route's canary weight at 20.
async fn paused_at_twenty(ns: &TestNamespace, name: &str, kind: RouteKind) -> Result<()> {
    ns.set_rollout_image(name, name, "nginx:1.27").await?;
    ns.wait_step(name, 1, "Paused").await?;
    let routes: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &kind.api_resource());
    e2e::poll_until(e2e::DEFAULT_TIMEOUT, || async {
        Ok((canary_weight(&routes.get(name).await?) == Some(20)).then_some(()))
    })
    .await
    .with_context(|| format!("the {} {name} at 20%", kind.gvk().2))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test); deletes and re-applies the GRPCRoute CRD"]
async fn a_rollout_whose_route_crd_is_missing_is_invalid_until_it_is_installed() -> Result<()> {
    let _restore = RestoreCrd;
    kubectl_ok(&["delete", "crd", CRD, "--ignore-not-found", "--wait=true", "--timeout=60s"], None).await?;
    let ns = TestNamespace::new("router-crd-missing").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&gateway_api_canary("GRPCRoute", "grpc", STEPS, "")).await?;
    ns.apply(&format!(
        "{}---{}",
        gateway_api_route("HTTPRoute", "http"),
        gateway_api_canary("HTTPRoute", "http", STEPS, "")
    ))
    .await?;

    let invalid = ns
        .wait_rollout("grpc", "InvalidSpec", |r| {
            let conditions = status(r).conditions.unwrap_or_default();
            conditions.iter().any(|c| c.type_ == "InvalidSpec" && c.message.contains("GRPCRoute"))
        })
        .await?;
    let message = status(&invalid).message.unwrap_or_default();
    assert!(
        message.contains("the cluster serves no gateway.networking.k8s.io/v1 GRPCRoute (grpcroutes.gateway.networking.k8s.io); install its CRD"),
        "{message}"
    );
    assert_eq!(phase(&invalid), "Degraded");
    // The other Rollout, through an HTTPRoute, is not held up.
    ns.wait_phase("http", "Healthy").await?;
    paused_at_twenty(&ns, "http", RouteKind::HttpRoute).await?;

    restore_crd().await?;
    ns.apply(&gateway_api_route("GRPCRoute", "grpc")).await?;
    ns.wait_phase("grpc", "Healthy").await?;
    paused_at_twenty(&ns, "grpc", RouteKind::GrpcRoute).await?;
    Ok(())
}
