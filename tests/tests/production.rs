//! Running it in production: leader election and failover between two processes, graceful
//! shutdown, metrics, readiness, and namespace mode with namespaced RBAC only.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::process::{ControllerProcess, counter, http_get};
use e2e::rollouts::{phase, status};
use e2e::{TestNamespace, poll_until, read_repo_file};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;

const LEASE: &str = "rollouts-controller-leader";

fn rollout(steps: &str) -> String {
    e2e::fixtures::inline_rollout("web", 2, "nginx:1.26", steps)
}

/// The controller's ServiceAccount with the namespaced Role we ship, and a kubeconfig for it.
async fn controller_account(ns: &TestNamespace, rbac: &str) -> Result<std::path::PathBuf> {
    ns.apply(&rbac.replace("namespace: default", &format!("namespace: {}", ns.name))).await?;
    ns.service_account_kubeconfig("rollouts-controller").await
}

async fn lease_holder(ns: &TestNamespace) -> Result<Option<String>> {
    let lease = ns.api::<Lease>().get_opt(LEASE).await?;
    Ok(lease.and_then(|l| l.spec).and_then(|s| s.holder_identity).filter(|h| !h.is_empty()))
}

async fn wait_holder(ns: &TestNamespace, within: Duration, wanted: impl Fn(&str) -> bool) -> Result<String> {
    poll_until(within, || async { Ok(lease_holder(ns).await?.filter(|h| wanted(h))) }).await
}

/// reportingInstance of every Event about the Rollout.
async fn event_reporters(ns: &TestNamespace) -> Result<Vec<(String, String)>> {
    let events = ns.api::<Event>().list(&ListParams::default()).await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Rollout"))
        .map(|e| (e.reporting_instance.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect())
}

const ELECTION: [&str; 7] = [
    "--leader-elect",
    "--lease-duration-seconds",
    "6",
    "--lease-renew-deadline-seconds",
    "4",
    "--lease-retry-period-seconds",
    "1",
];

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_standby_takes_over_when_the_leader_dies() -> Result<()> {
    let ns = TestNamespace::new("prod-failover").await?;
    let kubeconfig = controller_account(&ns, &read_repo_file("rbac/controller-namespaced.yaml")).await?;
    let a = ControllerProcess::start(&ns.name, "ctl-a", &kubeconfig, &ELECTION).await?;
    a.wait_ready().await?;
    let b = ControllerProcess::start(&ns.name, "ctl-b", &kubeconfig, &ELECTION).await?;
    b.wait_ready().await?;
    let leader = wait_holder(&ns, Duration::from_secs(15), |_| true).await?;
    let (leader_process, standby) = if leader == "ctl-a" { (&a, &b) } else { (&b, &a) };
    assert_eq!(standby.admin_get("/readyz").await, Some((200, "ready: standby".into())));

    ns.apply(&rollout("[{setWeight: 50}, {pause: {duration: 8s}}, {setWeight: 100}]")).await?;
    ns.wait_phase("web", "Healthy").await?;
    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_rollout("web", "the timed pause", |r| status(r).current_step_index == Some(1) && phase(r) == "Paused")
        .await?;
    let reporters = event_reporters(&ns).await?;
    assert!(!reporters.is_empty());
    assert!(reporters.iter().all(|(instance, _)| *instance == leader), "only the leader writes: {reporters:?}");

    leader_process.signal("KILL").await?;
    let killed = Instant::now();
    wait_holder(&ns, Duration::from_secs(20), |holder| holder == standby.identity).await?;
    let failover = killed.elapsed();
    // The standby needs the lease to stay unrenewed for its duration (6 s), checked every second;
    // the margin is for a loaded machine, still well short of the default lease's 15 s.
    assert!(failover <= Duration::from_secs(12), "failover took {failover:?}");

    ns.wait_phase("web", "Healthy").await?;
    // Events are written in the background, after the status: wait for it rather than race it.
    let completed_by_standby = poll_until(Duration::from_secs(10), || async {
        let after = event_reporters(&ns).await?;
        Ok(after
            .iter()
            .any(|(instance, reason)| *instance == standby.identity && reason == "RolloutCompleted")
            .then_some(()))
    })
    .await;
    assert!(completed_by_standby.is_ok(), "the new leader finished the rollout: {:?}", event_reporters(&ns).await?);
    println!("failover took {failover:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn sigterm_exits_cleanly_and_hands_over_at_once() -> Result<()> {
    let ns = TestNamespace::new("prod-shutdown").await?;
    let kubeconfig = controller_account(&ns, &read_repo_file("rbac/controller-namespaced.yaml")).await?;
    // Default lease timings: a handover that waited for expiry would take 15 s.
    let mut a = ControllerProcess::start(&ns.name, "ctl-a", &kubeconfig, &["--leader-elect"]).await?;
    a.wait_ready().await?;
    wait_holder(&ns, Duration::from_secs(15), |h| h == "ctl-a").await?;
    let b = ControllerProcess::start(&ns.name, "ctl-b", &kubeconfig, &["--leader-elect"]).await?;
    b.wait_ready().await?;

    a.signal("TERM").await?;
    let signalled = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(5), a.child.wait())
        .await
        .context("still running 5 s after SIGTERM")??;
    assert!(exit.success(), "exit status {exit}");
    wait_holder(&ns, Duration::from_secs(10), |h| h == "ctl-b").await?;
    let handover = signalled.elapsed();
    assert!(handover < Duration::from_secs(10), "the standby took {handover:?}: it waited for the lease to expire");

    ns.apply(&rollout("[{setWeight: 50}]")).await?;
    ns.wait_phase("web", "Healthy").await?;
    println!("exit and handover took {handover:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn metrics_are_openmetrics_and_count_reconciles() -> Result<()> {
    let ns = TestNamespace::new("prod-metrics").await?;
    let controller = ns.start_controller().await?;
    ns.apply(&rollout("[{setWeight: 50}]")).await?;
    ns.wait_phase("web", "Healthy").await?;
    let (code, first) = http_get(controller.admin, "/metrics").await?;
    assert_eq!(code, 200);
    let before = counter(&first, "rollouts_controller_reconciles")?;
    assert!(before >= 1.0);
    assert!(counter(&first, "rollouts_controller_api_requests")? > 0.0);
    assert!(first.contains(&format!("rollout_info{{namespace=\"{}\",name=\"web\"", ns.name)), "{first}");
    assert!(first.contains("rollout_phase{"), "{first}");

    ns.set_rollout_image("web", "web", "nginx:1.27").await?;
    ns.wait_phase("web", "Healthy").await?;
    let (_, second) = http_get(controller.admin, "/metrics").await?;
    let after = counter(&second, "rollouts_controller_reconciles")?;
    assert!(after > before, "reconciles {before} -> {after}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn not_ready_until_the_caches_sync() -> Result<()> {
    let ns = TestNamespace::new("prod-ready").await?;
    // The Role we ship, minus the Services rule: the Service cache can't sync.
    let rbac = read_repo_file("rbac/controller-namespaced.yaml");
    let without_services = rbac.replace("resources: [services]", "resources: [services-not-granted]");
    if without_services == rbac {
        bail!("rbac/controller-namespaced.yaml has no `resources: [services]` rule to withhold");
    }
    let kubeconfig = controller_account(&ns, &without_services).await?;
    let process = ControllerProcess::start(&ns.name, "ctl", &kubeconfig, &[]).await?;
    poll_until(Duration::from_secs(15), || async { Ok(process.admin_get("/livez").await.filter(|(c, _)| *c == 200)) })
        .await?;
    // Once its list of Services has been refused, the controller knows that cache can't sync.
    poll_until(Duration::from_secs(15), || async {
        let (_, metrics) = process.admin_get("/metrics").await.context("metrics")?;
        Ok(metrics
            .lines()
            .any(|l| {
                l.starts_with("rollouts_controller_api_requests_total")
                    && l.contains("services")
                    && l.contains("code=\"403\"")
            })
            .then_some(()))
    })
    .await
    .context("the Service list was never refused")?;
    let (code, body) = process.admin_get("/readyz").await.context("admin server answers")?;
    assert_eq!((code, body.as_str()), (503, "not ready: caches are syncing"));

    ns.apply(&rbac.replace("namespace: default", &format!("namespace: {}", ns.name))).await?;
    process.wait_ready().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn namespace_mode_touches_only_its_namespace() -> Result<()> {
    let mine = TestNamespace::new("prod-ns-mine").await?;
    let other = TestNamespace::new("prod-ns-other").await?;
    let kubeconfig = controller_account(&mine, &read_repo_file("rbac/controller-namespaced.yaml")).await?;
    // The other namespace's Rollout exists before the controller starts, so it would be in any
    // list the controller made of it; once the controller has finished a Rollout of its own that
    // was created later, it has had every chance to touch the other.
    other.apply(&rollout("[{setWeight: 50}]")).await?;
    let process = ControllerProcess::start(&mine.name, "ctl", &kubeconfig, &[]).await?;
    process.wait_ready().await?;
    mine.apply(&rollout("[{setWeight: 50}]")).await?;
    mine.wait_phase("web", "Healthy").await?;
    let untouched = other.rollout("web").await?;
    assert_eq!(untouched.status, None, "the Rollout in {} was touched", other.name);
    assert!(other.replica_sets().await?.is_empty());
    // Its requests stayed in its namespace: nothing was refused by RBAC.
    let (_, metrics) = http_get(process.admin, "/metrics").await?;
    assert!(
        !metrics.lines().any(|l| l.starts_with("rollouts_controller_api_requests_total") && l.contains("code=\"403\"")),
        "{metrics}"
    );
    Ok(())
}
