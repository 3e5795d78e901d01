//! The canary engine end to end: a Rollout with a workloadRef Deployment walks its steps on a
//! real control plane, with people's actions sent as the Argo plugin sends them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::argocd;
use e2e::rollouts::{phase, status};
use e2e::{DEFAULT_TIMEOUT, TestNamespace, poll_until};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::watcher::{self, watcher};
use rollouts_controller::api::{AnalysisRun, POD_TEMPLATE_HASH_LABEL, Rollout};
use serde_json::json;

fn deployment(replicas: i32, image: &str) -> String {
    e2e::fixtures::deployment("web", replicas, image)
}

/// A Rollout of Deployment `web` with the given steps (YAML flow list).
fn rollout(replicas: i32, steps: &str, extra_canary: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web}}
spec:
  replicas: {replicas}
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: web, scaleDown: onsuccess}}
  strategy:
    canary:
      steps: {steps}
      {extra_canary}
"#
    )
}

const STEPS: &str = "[{setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {duration: 5s}}]";

/// Applies the Deployment and the Rollout, starts the controller and waits for Healthy.
async fn healthy(ns: &TestNamespace, replicas: i32, steps: &str, extra: &str) -> Result<String> {
    ns.apply(&deployment(replicas, "nginx:1.26")).await?;
    ns.apply(&rollout(replicas, steps, extra)).await?;
    let ro = ns.wait_phase("web", "Healthy").await?;
    Ok(status(&ro).stable_rs.unwrap_or_default())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn workload_ref_basic_canary_walks_its_steps() -> Result<()> {
    let ns = TestNamespace::new("canary-steps").await?;
    let _controller = ns.start_controller().await?;
    let rev1 = healthy(&ns, 4, STEPS, "").await?;
    ns.wait_pods(&rev1, 4).await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok((ns.deployment_replicas("web").await? == 0).then_some(())) }).await?;

    ns.set_deployment_image("web", "web", "nginx:1.27").await?;
    let paused = ns.wait_step("web", 1, "Paused").await?;
    let rev2 = status(&paused).current_pod_hash.unwrap_or_default();
    assert_ne!(rev1, rev2);
    ns.wait_pods(&rev2, 1).await?;
    ns.wait_pods(&rev1, 3).await?;
    // `kubectl scale deployment/web --replicas 4` mid-canary is undone at once, not at the end.
    ns.scale_deployment("web", 4).await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok((ns.deployment_replicas("web").await? == 0).then_some(())) }).await?;
    assert_eq!(status(&ns.rollout("web").await?).current_step_index, Some(1), "still at the pause");

    ns.promote("web").await?;
    ns.wait_step("web", 3, "Paused").await?;
    let paused_at = Instant::now();
    ns.wait_pods(&rev2, 2).await?;
    ns.wait_pods(&rev1, 2).await?;

    let done = ns.wait_phase("web", "Healthy").await?;
    assert!(paused_at.elapsed() >= Duration::from_secs(4), "the 5 s pause was honoured");
    assert_eq!(status(&done).stable_rs.as_deref(), Some(rev2.as_str()));
    ns.wait_pods(&rev2, 4).await?;
    ns.wait_pods(&rev1, 0).await?;

    // A GitOps re-sync of the Deployment's replicas is undone.
    ns.scale_deployment("web", 4).await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok((ns.deployment_replicas("web").await? == 0).then_some(())) }).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_then_retry() -> Result<()> {
    let ns = TestNamespace::new("canary-abort").await?;
    let _controller = ns.start_controller().await?;
    let rev1 = healthy(&ns, 4, STEPS, "").await?;
    ns.set_deployment_image("web", "web", "nginx:1.27").await?;
    let paused = ns.wait_step("web", 1, "Paused").await?;
    let rev2 = status(&paused).current_pod_hash.unwrap_or_default();

    ns.abort("web").await?;
    let degraded = ns.wait_phase("web", "Degraded").await?;
    assert!(status(&degraded).message.unwrap_or_default().contains("RolloutAborted"));
    ns.wait_pods(&rev2, 0).await?;
    ns.wait_pods(&rev1, 4).await?;

    ns.retry("web").await?;
    ns.wait_step("web", 1, "Paused").await?;
    ns.wait_pods(&rev2, 1).await?;
    ns.wait_pods(&rev1, 3).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn manual_pause_freezes_steps_and_hpa_still_scales() -> Result<()> {
    let ns = TestNamespace::new("canary-hpa").await?;
    let _controller = ns.start_controller().await?;
    let steps = "[{setWeight: 25}, {pause: {duration: 3s}}, {setWeight: 50}]";
    let rev1 = healthy(&ns, 4, steps, "").await?;
    ns.set_deployment_image("web", "web", "nginx:1.27").await?;
    let at_pause = ns.wait_step("web", 1, "Paused").await?;
    let rev2 = status(&at_pause).current_pod_hash.unwrap_or_default();
    ns.patch_spec("web", json!({"spec": {"paused": true}})).await?;
    let paused =
        ns.wait_rollout("web", "manually paused", |r| status(r).message.as_deref() == Some("manually paused")).await?;
    // Past the 3 s pause's end, the controller sees a change (the HPA's replicas) and the step
    // still holds: the pause did not end while the Rollout was paused.
    let started = status(&paused).pause_conditions.unwrap_or_default().first().map(|c| c.start_time.0);
    let ends = started.context("the pause has a start time")? + k8s_openapi::jiff::SignedDuration::from_secs(3);
    let left = ends.duration_since(k8s_openapi::jiff::Timestamp::now());
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
    ns.apply(
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: web}
  minReplicas: 6
  maxReplicas: 8
"#,
    )
    .await?;
    ns.wait_rollout("web", "the HPA to set 6 replicas", |r| r.spec.replicas == Some(6)).await?;
    let observed = ns.wait_observed("web", Some("web")).await?;
    assert_eq!(status(&observed).current_step_index, Some(1), "the 3 s pause did not end while paused");
    // 25% of 6 with one pod of surge: 2 canary, 5 stable (2 of 7 is the closest to 25%).
    ns.wait_pods(&rev2, 2).await?;
    ns.wait_pods(&rev1, 5).await?;
    // The status counts the pods once the ReplicaSets report them.
    let ro = ns.wait_rollout("web", "7 pods in HPAReplicas", |r| status(r).hpa_replicas == Some(7)).await?;
    assert_eq!(status(&ro).current_step_index, Some(1));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn restart_replaces_every_pod_within_max_unavailable() -> Result<()> {
    let ns = TestNamespace::new("canary-restart").await?;
    let _controller = ns.start_controller().await?;
    healthy(&ns, 4, "[{setWeight: 50}]", "maxUnavailable: 1").await?;
    let pods = ns.watch_ready_pods(POD_TEMPLATE_HASH_LABEL).await?;
    let before = pods.ready();
    assert_eq!(before.len(), 4);

    // Times have second precision: the next second is after every pod that exists now.
    let now = k8s_openapi::jiff::Timestamp::now();
    let restart_at = k8s_openapi::jiff::Timestamp::from_second(now.as_second() + 1)?.to_string();
    ns.patch_spec("web", json!({"spec": {"restartAt": restart_at}})).await?;
    ns.wait_rollout("web", "every pod restarted", |r| {
        status(r).restarted_at.map(|t| t.0.to_string()) == Some(restart_at.clone())
    })
    .await?;
    poll_until(DEFAULT_TIMEOUT, || async {
        let ready = pods.ready();
        Ok((ready.len() == 4 && ready.is_disjoint(&before)).then_some(()))
    })
    .await
    .context("four new pods ready")?;
    let fewest = pods.fewest().await?;
    assert!(fewest >= 3, "available pods fell to {fewest}, below replicas - maxUnavailable = 3");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn invalid_specs_are_reported_and_create_nothing_until_fixed() -> Result<()> {
    let ns = TestNamespace::new("canary-invalid").await?;
    let _controller = ns.start_controller().await?;
    // The referenced Deployment does not exist yet.
    ns.apply(&rollout(2, "[{setWeight: 50}]", "")).await?;
    let invalid = ns.wait_phase("web", "Degraded").await?;
    let message = status(&invalid).message.unwrap_or_default();
    assert!(message.contains("InvalidSpec") && message.contains("Deployment \"web\" not found"), "{message}");
    assert!(ns.replica_sets().await?.is_empty());

    ns.apply(&deployment(2, "nginx:1.26")).await?;
    ns.wait_phase("web", "Healthy").await?;

    // An analysis step whose template doesn't exist is reported with the field, not started.
    ns.apply(&rollout(2, "[{setWeight: 50}, {analysis: {templates: [{templateName: success-rate}]}}]", "")).await?;
    let missing = ns.wait_phase("web", "Degraded").await?;
    let message = status(&missing).message.unwrap_or_default();
    assert!(
        message.contains(
            "spec.strategy.canary.steps[1].analysis.templates: Invalid value: \"success-rate\": AnalysisTemplate 'success-rate' not found"
        ),
        "{message}"
    );
    ns.set_deployment_image("web", "web", "nginx:1.27").await?;
    ns.wait_observed("web", Some("web")).await?;
    assert_eq!(ns.replica_sets().await?.len(), 1, "no new ReplicaSet for an invalid Rollout");
    assert!(ns.api::<AnalysisRun>().list(&Default::default()).await?.items.is_empty(), "no run for an invalid Rollout");
    // A step this controller does not implement yet is reported, not ignored.
    ns.apply(&rollout(2, "[{setWeight: 50}, {experiment: {templates: []}}]", "")).await?;
    let what = "steps[1].experiment is not supported by this controller yet";
    let unsupported = ns.wait_rollout("web", what, |r| status(r).message.is_some_and(|m| m.contains(what))).await?;
    assert_eq!(phase(&unsupported), "Degraded");

    ns.apply(&rollout(2, "[{setWeight: 50}]", "")).await?;
    ns.wait_phase("web", "Healthy").await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_restarted_controller_continues_from_the_same_step() -> Result<()> {
    let ns = TestNamespace::new("canary-resume").await?;
    let controller = ns.start_controller().await?;
    let steps = "[{setWeight: 75}, {pause: {}}, {setWeight: 100}, {pause: {}}]";
    let rev1 = healthy(&ns, 4, steps, "maxSurge: 1\n      maxUnavailable: 0").await?;

    // Stopped while scaling: 75% of 4 with one surge pod takes several moves.
    ns.set_deployment_image("web", "web", "nginx:1.27").await?;
    ns.wait_rollout("web", "the canary ReplicaSet", |r| {
        status(r).current_pod_hash.as_deref().is_some_and(|h| h != rev1)
    })
    .await?;
    controller.stop().await?;
    let controller = ns.start_controller().await?;
    let paused = ns.wait_step("web", 1, "Paused").await?;
    let rev2 = status(&paused).current_pod_hash.unwrap_or_default();
    ns.wait_pods(&rev2, 3).await?;
    ns.wait_pods(&rev1, 1).await?;

    // Stopped at a pause, promoted while nobody watches: the next controller moves on.
    controller.stop().await?;
    ns.promote("web").await?;
    let _controller = ns.start_controller().await?;
    ns.wait_step("web", 3, "Paused").await?;
    ns.wait_pods(&rev2, 4).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn deleting_the_rollout_restores_the_deployment_first() -> Result<()> {
    let ns = TestNamespace::new("canary-delete").await?;
    let _controller = ns.start_controller().await?;
    healthy(&ns, 3, "[{setWeight: 50}]", "").await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok((ns.deployment_replicas("web").await? == 0).then_some(())) }).await?;

    // Both watches list before the delete, so neither misses its change. Resource versions are
    // revisions of the cluster's one etcd here, so they order changes across kinds.
    let (deployment_listed, deployment_ready) = tokio::sync::oneshot::channel();
    let deployment_back = tokio::spawn(first_revision(
        ns.api::<Deployment>(),
        watcher::Config::default().fields("metadata.name=web"),
        deployment_listed,
        |event| match event {
            watcher::Event::Apply(d) => d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) >= 3,
            _ => false,
        },
    ));
    let (replica_sets_listed, replica_sets_ready) = tokio::sync::oneshot::channel();
    let replica_set_gone = tokio::spawn(first_revision(
        ns.api::<ReplicaSet>(),
        watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL),
        replica_sets_listed,
        |event| matches!(event, watcher::Event::Delete(_)),
    ));
    deployment_ready.await?;
    replica_sets_ready.await?;

    ns.api::<Rollout>().delete("web", &DeleteParams::background()).await?;
    let within = |task| async { tokio::time::timeout(Duration::from_secs(90), task).await };
    let back = within(deployment_back).await.context("the Deployment never had its pods back")???;
    let gone = within(replica_set_gone).await.context("the Rollout's ReplicaSet was not collected")???;
    assert!(
        back < gone,
        "the Deployment had its pods back (revision {back}) only after the Rollout's ReplicaSet went ({gone})"
    );
    Ok(())
}

/// Watches `api`; says when it has listed, then returns the resource version of the first object
/// in an event that `wanted` picks.
async fn first_revision<K>(
    api: kube::Api<K>,
    config: watcher::Config,
    listed: tokio::sync::oneshot::Sender<()>,
    wanted: fn(&watcher::Event<K>) -> bool,
) -> Result<u64>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut events = std::pin::pin!(watcher(api, config));
    let mut listed = Some(listed);
    while let Some(event) = events.try_next().await? {
        if matches!(event, watcher::Event::InitDone) {
            listed.take().map(|listed| listed.send(()));
        }
        if let watcher::Event::Apply(object) | watcher::Event::Delete(object) = &event
            && wanted(&event)
        {
            return Ok(object.resource_version().unwrap_or_default().parse()?);
        }
    }
    bail!("the watch ended")
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_pod_template_can_be_the_workload() -> Result<()> {
    let ns = TestNamespace::new("canary-podtemplate").await?;
    let _controller = ns.start_controller().await?;
    let template = |image: &str| {
        format!(
            r#"
apiVersion: v1
kind: PodTemplate
metadata: {{name: web}}
template:
  metadata: {{labels: {{app: web}}}}
  spec:
    containers: [{{name: web, image: "{image}"}}]
"#
        )
    };
    ns.apply(&template("nginx:1.26")).await?;
    ns.apply(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  workloadRef: {apiVersion: v1, kind: PodTemplate, name: web}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"#,
    )
    .await?;
    let rev1 = status(&ns.wait_phase("web", "Healthy").await?).stable_rs.unwrap_or_default();
    ns.apply(&template("nginx:1.27")).await?;
    let paused = ns.wait_step("web", 1, "Paused").await?;
    let rev2 = status(&paused).current_pod_hash.unwrap_or_default();
    assert_ne!(rev1, rev2, "a change of the PodTemplate is a new revision");
    ns.wait_pods(&rev2, 1).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn migrating_a_deployment_keeps_capacity_throughout() -> Result<()> {
    let ns = TestNamespace::new("canary-migrate").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&e2e::read_repo_file("examples/migrate-from-deployment.yaml")).await?;
    ns.wait_for::<Deployment>("web", "the Deployment's pods", DEFAULT_TIMEOUT, |d| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(3)
    })
    .await?;
    ns.wait_phase("web", "Paused").await?;
    assert!(ns.replica_sets().await?.is_empty(), "a paused Rollout starts nothing");

    let pods = ns.watch_ready_pods("app=web").await?;
    ns.patch_spec("web", json!({"spec": {"paused": false}})).await?;
    ns.wait_phase("web", "Healthy").await?;
    poll_until(DEFAULT_TIMEOUT, || async { Ok((ns.deployment_replicas("web").await? == 0).then_some(())) }).await?;
    let fewest = pods.fewest().await?;
    assert!(fewest >= 3, "only {fewest} pods were ready at some point during the migration");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_rollout_that_cant_be_read_is_reported_and_stalls_no_other() -> Result<()> {
    let ns = TestNamespace::new("canary-malformed").await?;
    let _controller = ns.start_controller().await?;
    // The pod template passes the CRD schema as it is, so a wrong type reaches the controller.
    ns.apply(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: broken}
spec:
  replicas: 1
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec: {containers: "not a list"}
  strategy: {canary: {steps: [{setWeight: 50}]}}
"#,
    )
    .await?;
    ns.apply(&deployment(2, "nginx:1.26")).await?;
    ns.apply(&rollout(2, "[{setWeight: 50}]", "")).await?;
    ns.wait_phase("web", "Healthy").await?;
    // Our own client can't read it typed either: read it as plain JSON.
    let resource = kube::api::ApiResource::erase::<Rollout>(&());
    let raw: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    let status = poll_until(DEFAULT_TIMEOUT, || async {
        let status = raw.get("broken").await?.data["status"].clone();
        let reported =
            status["message"].as_str().is_some_and(|m| m.starts_with("InvalidSpec") && m.contains("could not be read"));
        Ok(reported.then_some(status))
    })
    .await?;
    assert_eq!(status["phase"], "Degraded");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn argo_cd_sees_each_state_of_a_workload_ref_rollout() -> Result<()> {
    let ns = TestNamespace::new("canary-argocd").await?;
    let _controller = ns.start_controller().await?;
    ns.apply(&deployment(2, "nginx:1.26")).await?;
    // Applied by Argo CD, with its tracking annotation: any annotation makes its health check
    // compare the workload-generation annotation with status.workloadObservedGeneration.
    // minReadySeconds keeps the update Progressing long enough to be seen.
    let steps = "[{setWeight: 50}, {pause: {}}]";
    let manifest = rollout(2, steps, "").replace(
        "metadata: {name: web}",
        "metadata: {name: web, annotations: {argocd.argoproj.io/tracking-id: 'shop:argoproj.io/Rollout:shop/web'}}",
    );
    ns.apply(&manifest.replace("  replicas: 2", "  replicas: 2\n  minReadySeconds: 3")).await?;
    let argo_cd = |wanted: &'static str, message: &'static str| {
        move |r: &Rollout| {
            let health = argocd::health(r);
            health.status == wanted && health.message.contains(message)
        }
    };
    ns.wait_rollout("web", "Argo CD: Healthy", argo_cd("Healthy", "")).await?;

    ns.set_deployment_image("web", "web", "nginx:1.27").await?;
    ns.wait_rollout("web", "Argo CD: Progressing, waiting for the canary", argo_cd("Progressing", "pods available"))
        .await?;
    ns.wait_rollout("web", "Argo CD: Suspended at the pause", argo_cd("Suspended", "paused until promoted")).await?;
    ns.abort("web").await?;
    ns.wait_rollout("web", "Argo CD: Degraded", argo_cd("Degraded", "RolloutAborted")).await?;
    ns.retry("web").await?;
    ns.wait_rollout("web", "Argo CD: Suspended again", argo_cd("Suspended", "paused until promoted")).await?;
    ns.promote("web").await?;
    let done = ns.wait_rollout("web", "Argo CD: Healthy after the update", argo_cd("Healthy", "")).await?;
    assert_eq!(phase(&done), "Healthy");
    Ok(())
}

/// The labels and annotations of the running pods of `hash`.
async fn pod_metadata(ns: &TestNamespace, hash: &str) -> Result<Vec<(Option<String>, Option<String>)>> {
    let pods =
        ns.api::<Pod>().list(&ListParams::default().labels(&format!("{POD_TEMPLATE_HASH_LABEL}={hash}"))).await?;
    Ok(pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.labels().get("role").cloned(), p.annotations().get("canary-note").cloned()))
        .collect())
}

async fn wait_pod_metadata(ns: &TestNamespace, hash: &str, pods: usize, role: &str, note: Option<&str>) -> Result<()> {
    let wanted = vec![(Some(role.to_string()), note.map(str::to_string)); pods];
    let result =
        poll_until(DEFAULT_TIMEOUT, || async { Ok((pod_metadata(ns, hash).await? == wanted).then_some(())) }).await;
    if result.is_err() {
        bail!("pods of {hash}: wanted (role, canary-note) {wanted:?}, have {:?}", pod_metadata(ns, hash).await?);
    }
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn pods_carry_the_metadata_of_their_role() -> Result<()> {
    let ns = TestNamespace::new("canary-metadata").await?;
    let _controller = ns.start_controller().await?;
    let manifest = e2e::fixtures::inline_rollout("web", 2, "nginx:1.26", "[{setWeight: 50}, {pause: {}}]").replace(
        "strategy: {canary: {",
        "strategy: {canary: {stableMetadata: {labels: {role: stable}}, \
         canaryMetadata: {labels: {role: canary}, annotations: {canary-note: trying}}, ",
    );
    ns.apply(&manifest).await?;
    let rev1 = status(&ns.wait_phase("web", "Healthy").await?).stable_rs.unwrap_or_default();
    wait_pod_metadata(&ns, &rev1, 2, "stable", None).await?;

    ns.patch_spec(
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
    )
    .await?;
    let paused = ns.wait_step("web", 1, "Paused").await?;
    let rev2 = status(&paused).current_pod_hash.unwrap_or_default();
    wait_pod_metadata(&ns, &rev2, 1, "canary", Some("trying")).await?;
    wait_pod_metadata(&ns, &rev1, 1, "stable", None).await?;

    ns.promote("web").await?;
    ns.wait_phase("web", "Healthy").await?;
    // The canary's pods are stable now: relabelled in place, their canary annotation gone.
    wait_pod_metadata(&ns, &rev2, 2, "stable", None).await?;
    let rs = ns.api::<ReplicaSet>().get(&format!("web-{rev2}")).await?;
    let template = rs.spec.and_then(|s| s.template).and_then(|t| t.metadata).unwrap_or_default();
    assert_eq!(template.labels.unwrap_or_default().get("role").map(String::as_str), Some("stable"));
    assert!(!template.annotations.unwrap_or_default().contains_key("canary-note"));
    Ok(())
}
