//! The plugin end to end: each test gets a namespace and a controller, then does everything a
//! person would through the `kubectl-rollouts` binary.

mod support;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use e2e::{TestNamespace, User, poll_until, read_repo_file};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;
use rollouts_controller::api::Rollout;
use support::{Plugin, assert_line};
use tokio::io::AsyncReadExt;

const TIMEOUT: Duration = Duration::from_secs(90);

impl Plugin {
    async fn rollout(&self, name: &str) -> Result<Rollout> {
        Ok(serde_json::from_str(&self.ok(&["get", name, "-o", "json"]).await?)?)
    }

    /// Polls `status NAME` until its line starts with `prefix`; returns the line.
    async fn wait_status(&self, name: &str, prefix: &str) -> Result<String> {
        let found = poll_until(TIMEOUT, || async {
            let line = self.ok(&["status", name]).await?;
            Ok(line.starts_with(prefix).then_some(line))
        })
        .await;
        match found {
            Ok(line) => Ok(line),
            Err(error) => {
                let state = self.run(&["get", name]).await.map(|r| r.stdout + &r.stderr).unwrap_or_default();
                bail!("status of {name} never started with {prefix:?}: {error:#}\n{state}")
            }
        }
    }

    /// Waits until the rollout is paused at step `index` by a pause step; returns `get`'s output.
    async fn wait_pause_step(&self, name: &str, index: i32) -> Result<String> {
        poll_until(TIMEOUT, || async {
            let rollout = self.rollout(name).await?;
            let status = rollout.status.unwrap_or_default();
            let paused = status.pause_conditions.is_some_and(|p| !p.is_empty());
            if !(paused && status.current_step_index == Some(index)) {
                return Ok(None);
            }
            Ok(Some(self.ok(&["get", name]).await?))
        })
        .await
        .with_context(|| format!("{name} never paused at step {index}"))
    }

    /// `status --watch` until Healthy.
    async fn watch_until_healthy(&self, name: &str) -> Result<()> {
        let out = self.ok(&["status", name, "--watch", "--timeout", "60s"]).await?;
        ensure!(out.lines().last() == Some("Healthy"), "status --watch ended without Healthy:\n{out}");
        Ok(())
    }
}

/// Names of the pods in `get`'s tree.
fn pod_names(get_output: &str) -> Vec<String> {
    get_output
        .lines()
        .filter(|line| line.contains(" Pod "))
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with("web-")).map(String::from))
        .collect()
}

const STEPS: &str = "[{setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {}}]";

/// A basic canary of 4 pods with an inline pod template.
fn web_rollout() -> String {
    e2e::fixtures::inline_rollout("web", 4, "nginx:1.26", STEPS)
}

/// Applies `web`, waits for Healthy, updates the image and waits at the first pause.
/// The Rollout's ReplicaSets by name, with their revision.
async fn replica_sets(ns: &TestNamespace) -> Result<Vec<(String, Option<String>)>> {
    let list = ns.api::<ReplicaSet>().list(&Default::default()).await?;
    let mut replica_sets: Vec<(String, Option<String>)> = list
        .items
        .iter()
        .map(|rs| (rs.name_any(), rs.annotations().get("rollout.argoproj.io/revision").cloned()))
        .collect();
    replica_sets.sort();
    Ok(replica_sets)
}

async fn paused_web(ns: &TestNamespace, plugin: &Plugin) -> Result<()> {
    ns.apply(&web_rollout()).await?;
    plugin.watch_until_healthy("web").await?;
    let out = plugin.ok(&["set", "image", "web", "web=nginx:1.27"]).await?;
    assert_eq!(out, "rollout \"web\" image updated\n");
    let get = plugin.wait_pause_step("web", 1).await?;
    assert_line(&get, "Status:          Paused");
    assert_line(&get, "  SetWeight:     25");
    assert_line(&get, "                 nginx:1.27 (canary)");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_istio_example_walks_its_steps_with_promotes() -> Result<()> {
    let ns = TestNamespace::new("cli-istio").await?;
    let _controller = ns.start_controller().await?;
    let plugin = Plugin::admin(&ns);
    ns.apply(&read_repo_file("examples/istio-canary.yaml")).await?;
    plugin.watch_until_healthy("istio-demo").await?;
    let get = plugin.ok(&["get", "istio-demo"]).await?;
    assert_line(&get, "Images:          argoproj/rollouts-demo:blue (stable)");

    let out = plugin.ok(&["set", "image", "istio-demo", "*=argoproj/rollouts-demo:yellow"]).await?;
    assert_eq!(out, "deployment \"istio-demo\" image updated\n");
    // The manual pauses, with the traffic weight in force at each.
    for (step, weight) in [(1, 0), (4, 1), (6, 10), (9, 50)] {
        let get = plugin.wait_pause_step("istio-demo", step).await?;
        assert_line(
            &get,
            &format!("  Step:          {step}/14 [{}{}]", "#".repeat(step as usize), "-".repeat(14 - step as usize)),
        );
        assert_line(&get, "  Paused:        until promoted: `kubectl rollouts promote istio-demo`");
        assert_line(&get, &format!("  SetWeight:     {weight}"));
        assert_line(&get, &format!("  ActualWeight:  {weight}"));
        assert_line(&get, "                 argoproj/rollouts-demo:yellow (canary)");
        let status = plugin.ok(&["status", "istio-demo"]).await?;
        assert!(status.starts_with("Paused - CanaryPauseStep"), "{status}");
        assert_eq!(plugin.ok(&["promote", "istio-demo"]).await?, "rollout 'istio-demo' promoted\n");
    }
    // The last step is a 15 s pause with everything on the canary: it counts down by itself.
    let get = plugin.wait_pause_step("istio-demo", 13).await?;
    assert!(get.contains(" left of 15s"), "{get}");
    assert_line(&get, "  ActualWeight:  100");
    plugin.watch_until_healthy("istio-demo").await?;
    let get = plugin.ok(&["get", "istio-demo"]).await?;
    assert_line(&get, "Status:          Healthy");
    assert_line(&get, "Images:          argoproj/rollouts-demo:yellow (stable)");
    assert_line(&get, "  Step:          14/14 [##############]");
    let list = plugin.ok(&["list"]).await?;
    assert!(list.lines().any(|l| l.starts_with("istio-demo") && l.contains("Healthy")), "{list}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_degrades_and_retry_resumes() -> Result<()> {
    let ns = TestNamespace::new("cli-abort").await?;
    let _controller = ns.start_controller().await?;
    let plugin = Plugin::admin(&ns);
    paused_web(&ns, &plugin).await?;

    assert_eq!(plugin.ok(&["abort", "web"]).await?, "rollout 'web' aborted\n");
    let stderr = plugin.fails(&["status", "web", "--watch", "--timeout", "60s"]).await?;
    assert!(stderr.starts_with("error: The rollout is in a degraded state with message: RolloutAborted: "), "{stderr}");
    let get = plugin.ok(&["get", "web"]).await?;
    assert_line(&get, "Status:          Degraded");
    assert_line(&get, "  SetWeight:     0");

    assert_eq!(plugin.ok(&["retry", "rollout", "web"]).await?, "rollout 'web' retried\n");
    plugin.wait_status("web", "Paused - CanaryPauseStep").await?;
    let get = plugin.wait_pause_step("web", 1).await?;
    assert_line(&get, "  SetWeight:     25");
    assert_line(&get, "  ActualWeight:  25");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn promote_full_skips_the_remaining_steps() -> Result<()> {
    let ns = TestNamespace::new("cli-full").await?;
    let _controller = ns.start_controller().await?;
    let plugin = Plugin::admin(&ns);
    paused_web(&ns, &plugin).await?;
    // Someone follows along with `get --watch`, through a pipe.
    let mut watching = plugin.command(&["get", "web", "--watch", "--timeout", "60s"]).spawn()?;

    assert_eq!(plugin.ok(&["promote", "web", "--full"]).await?, "rollout 'web' fully promoted\n");
    plugin.watch_until_healthy("web").await?;
    let get = plugin.ok(&["get", "web"]).await?;
    assert_line(&get, "Images:          nginx:1.27 (stable)");
    assert_line(&get, "  Step:          4/4 [####]");

    // The watcher sees the same events on its own connection, perhaps a moment later: once it has
    // drawn the healthy state, Ctrl-C ends the watch.
    let mut watched_stdout = watching.stdout.take().context("get --watch stdout is piped")?;
    let mut watched = String::new();
    let healthy_drawn = |text: &str| {
        text.rsplit("\n\nName:").next().is_some_and(|last| {
            last.contains("Status:          Healthy") && last.contains("nginx:1.27 (stable)") && last.ends_with("\n")
        })
    };
    tokio::time::timeout(TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        while !healthy_drawn(&watched) {
            let read = watched_stdout.read(&mut chunk).await?;
            ensure!(read > 0, "get --watch ended before drawing Healthy:\n{watched}");
            watched.push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
        Ok(())
    })
    .await
    .context("get --watch never drew the healthy state")??;
    let pid = watching.id().context("get --watch is running")?;
    let interrupt = tokio::process::Command::new("kill").args(["-INT", &pid.to_string()]).status().await?;
    assert!(interrupt.success());
    watched_stdout.read_to_string(&mut watched).await?;
    let ended = watching.wait_with_output().await?;
    assert!(ended.status.success(), "get --watch failed: {}", String::from_utf8_lossy(&ended.stderr));
    // Without a terminal, each new state followed the last after a blank line.
    let frames: Vec<String> = watched.split("\n\nName:").map(String::from).collect();
    assert!(frames.len() >= 3, "expected several states, got {frames:#?}");
    assert!(frames[0].contains("Status:          Paused"), "{}", frames[0]);
    let last = frames.last().map(String::as_str).unwrap_or_default();
    assert!(last.contains("Status:          Healthy") && last.contains("nginx:1.27 (stable)"), "{last}");
    assert!(!last.contains('\x1b'), "no colour without a terminal");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn restart_replaces_every_pod() -> Result<()> {
    let ns = TestNamespace::new("cli-restart").await?;
    let _controller = ns.start_controller().await?;
    let plugin = Plugin::admin(&ns);
    ns.apply(&web_rollout()).await?;
    plugin.watch_until_healthy("web").await?;
    let before = pod_names(&plugin.ok(&["get", "web"]).await?);
    assert_eq!(before.len(), 4, "{before:?}");
    // restartAt has whole seconds: let the pods be older than the second it names.
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert_eq!(plugin.ok(&["restart", "web"]).await?, "rollout 'web' restarts in 0s\n");
    poll_until(TIMEOUT, || async {
        let rollout = plugin.rollout("web").await?;
        let restarted = rollout.status.and_then(|s| s.restarted_at).is_some();
        let get = plugin.ok(&["get", "web"]).await?;
        let now = pod_names(&get);
        let replaced = now.len() == 4 && now.iter().all(|pod| !before.contains(pod));
        let running = get.lines().filter(|l| l.contains(" Pod ") && l.contains("Running")).count() == 4;
        Ok((restarted && replaced && running).then_some(()))
    })
    .await
    .context("the restart never replaced every pod")?;
    plugin.wait_status("web", "Healthy").await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn undo_puts_the_previous_image_back_in_the_deployment() -> Result<()> {
    let ns = TestNamespace::new("cli-undo").await?;
    let _controller = ns.start_controller().await?;
    let plugin = Plugin::admin(&ns);
    ns.apply(&e2e::fixtures::deployment("web", 0, "nginx:1.26")).await?;
    ns.apply(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy: {canary: {steps: [{setWeight: 50}, {pause: {}}]}}
"#,
    )
    .await?;
    plugin.watch_until_healthy("web").await?;
    let out = plugin.ok(&["set", "image", "web", "web=nginx:1.27"]).await?;
    assert_eq!(out, "deployment \"web\" image updated\n");
    // The Rollout's stored phase is still Healthy: the watch must not take it for the outcome of
    // the change it hasn't seen yet. The update stops at a pause, so the watch times out.
    let run = plugin.run(&["status", "web", "--watch", "--timeout", "3s"]).await?;
    assert!(!run.success && !run.stdout.contains("Healthy"), "{run:?}");
    assert_eq!(run.stderr, "error: Rollout status watch exceeded timeout\n");
    plugin.wait_pause_step("web", 1).await?;

    let out = plugin.ok(&["undo", "web", "--to-revision", "2"]).await?;
    assert_eq!(out, "skipped rollback (current template already matches revision 2)\n");
    assert_eq!(plugin.ok(&["undo", "web"]).await?, "rollout 'web' rolled back to revision 1\n");
    let deployment = ns.api::<Deployment>().get("web").await?;
    let image = deployment.spec.and_then(|s| s.template.spec).and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("nginx:1.26"));
    // Back on the stable template, the rollout is fully promoted at once.
    plugin.watch_until_healthy("web").await?;
    let get = plugin.ok(&["get", "web"]).await?;
    assert_line(&get, "Images:          nginx:1.26 (stable)");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn undo_puts_the_previous_template_back_in_the_rollout() -> Result<()> {
    let ns = TestNamespace::new("cli-undo-inline").await?;
    let _controller = ns.start_controller().await?;
    let plugin = Plugin::admin(&ns);
    paused_web(&ns, &plugin).await?;
    assert_eq!(plugin.ok(&["promote", "web", "--full"]).await?, "rollout 'web' fully promoted\n");
    plugin.watch_until_healthy("web").await?;

    let before: Vec<String> = replica_sets(&ns).await?.into_iter().map(|(name, _)| name).collect();
    assert_eq!(plugin.ok(&["undo", "web"]).await?, "rollout 'web' rolled back to revision 1\n");
    let rollout = plugin.rollout("web").await?;
    let image = rollout.spec.template.and_then(|t| t.spec).and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("nginx:1.26"));
    // The old template is the canary now, and walks the steps again, on its old ReplicaSet (the
    // template undo copied has the apiserver's defaults in it; it is the same template).
    let get = plugin.wait_pause_step("web", 1).await?;
    assert_line(&get, "                 nginx:1.26 (canary)");
    let after = replica_sets(&ns).await?;
    assert_eq!(after.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(), before, "no new ReplicaSet");
    assert!(after.iter().any(|(_, revision)| revision.as_deref() == Some("3")), "the old one is revision 3: {after:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn roles_decide_what_each_user_may_do() -> Result<()> {
    let ns = TestNamespace::new("cli-rbac").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&read_repo_file("rbac/roles.yaml")).await?;
    ns.apply(&read_repo_file("rbac/example-bindings.yaml")).await?;
    let admin = Plugin::admin(&ns);
    paused_web(&ns, &admin).await?;
    let namespace = &ns.name;

    // A typo gets a suggestion.
    let stderr = admin.fails(&["get", "wbe"]).await?;
    assert_eq!(
        stderr,
        format!("error: rollout \"wbe\" not found in namespace \"{namespace}\"; did you mean \"web\"?\n")
    );

    // The reader reads, without the tree, and may not promote. New bindings take a moment.
    let reader = Plugin::user(&ns, User::Reader);
    let get = reader.eventually_ok(&["get", "web"]).await?;
    assert_line(&get, "Status:          Paused");
    assert_line(
        &get,
        &format!("(tree not shown: it needs permission to list replicasets and pods in namespace \"{namespace}\")"),
    );
    let list = reader.ok(&["list"]).await?;
    assert!(list.lines().any(|l| l.starts_with("web ") && l.contains("Paused")), "{list}");
    assert!(reader.ok(&["status", "web"]).await?.starts_with("Paused - CanaryPauseStep"));
    let stderr = reader.fails(&["promote", "web"]).await?;
    assert_eq!(
        stderr,
        format!(
            "error: forbidden: you can't patch rollouts in namespace \"{namespace}\"; ask for the rollouts-writer role\n"
        )
    );

    // The writer operates it, and still gets the summary.
    let writer = Plugin::user(&ns, User::Writer);
    let get = writer.eventually_ok(&["get", "web"]).await?;
    assert_line(&get, "Status:          Paused");
    assert!(get.contains("(tree not shown: it needs permission to list replicasets and pods"), "{get}");
    assert_eq!(writer.ok(&["promote", "web"]).await?, "rollout 'web' promoted\n");
    writer.wait_pause_step("web", 3).await?;
    assert_eq!(writer.ok(&["abort", "web"]).await?, "rollout 'web' aborted\n");
    writer.wait_status("web", "Degraded - RolloutAborted").await?;
    assert_eq!(writer.ok(&["retry", "web"]).await?, "rollout 'web' retried\n");
    writer.wait_status("web", "Paused - CanaryPauseStep").await?;
    assert_eq!(writer.ok(&["pause", "web"]).await?, "rollout 'web' paused\n");
    writer.wait_status("web", "Paused - manually paused").await?;
    assert_eq!(writer.ok(&["resume", "web"]).await?, "rollout 'web' resumed\n");
    writer.wait_status("web", "Paused - CanaryPauseStep").await?;

    // Nobody may not even read it.
    let nobody = Plugin::user(&ns, User::Nobody);
    let stderr = nobody.fails(&["get", "web"]).await?;
    assert_eq!(
        stderr,
        format!(
            "error: forbidden: you can't get rollouts in namespace \"{namespace}\"; ask for the rollouts-reader role\n"
        )
    );
    Ok(())
}
