//! Traffic routing end to end: stable/canary Service selectors and Istio VirtualService weights,
//! promoted with plain kubectl-style patches, with an observer that checks every state it sees.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use e2e::controller::CrashPoint;
use e2e::rollouts::{phase, status};
use e2e::{DEFAULT_TIMEOUT, TestNamespace, poll_until, read_repo_file};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rollouts_controller::api::{MANAGED_BY_ANNOTATION, POD_TEMPLATE_HASH_LABEL, TRAFFIC_CHANGED_ANNOTATION};
use rollouts_controller::plan::Action;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const NAME: &str = "istio-demo";

fn vs_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// What traffic looks like at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TrafficState {
    /// (stable, canary) weights of route `primary`.
    weights: (i64, i64),
    stable_selects: Option<String>,
    canary_selects: Option<String>,
    /// Available pods by pod-template hash.
    available: BTreeMap<String, i32>,
    /// When the controller planned the last change of the weights, and of each Service's selector
    /// (the `traffic-changed-at` annotation it writes with each change).
    weights_changed_at: Option<Timestamp>,
    stable_changed_at: Option<Timestamp>,
    canary_changed_at: Option<Timestamp>,
}

fn changed_at<K: ResourceExt>(object: &K) -> Option<Timestamp> {
    object.annotations().get(TRAFFIC_CHANGED_ANNOTATION).and_then(|t| t.parse().ok())
}

fn state_of(vs: &DynamicObject, stable: &Service, canary: &Service, replica_sets: &[&ReplicaSet]) -> TrafficState {
    let destinations = &vs.data["spec"]["http"][0]["route"];
    let weight = |i: usize| destinations[i]["weight"].as_i64().unwrap_or(0);
    let selects = |service: &Service| service.spec.as_ref()?.selector.as_ref()?.get(POD_TEMPLATE_HASH_LABEL).cloned();
    let available = replica_sets
        .iter()
        .map(|rs| {
            let hash = rs.labels().get(POD_TEMPLATE_HASH_LABEL).cloned().unwrap_or_default();
            (hash, rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0))
        })
        .collect();
    TrafficState {
        weights: (weight(0), weight(1)),
        stable_selects: selects(stable),
        canary_selects: selects(canary),
        available,
        weights_changed_at: changed_at(vs),
        stable_changed_at: changed_at(stable),
        canary_changed_at: changed_at(canary),
    }
}

async fn traffic_state(ns: &TestNamespace) -> Result<TrafficState> {
    let vs = vs_api(&ns.client, &ns.name).get(NAME).await?;
    let services = ns.api::<Service>();
    let stable = services.get("istio-demo-stable").await?;
    let canary = services.get("istio-demo-canary").await?;
    let replica_sets = ns.api::<ReplicaSet>().list(&ListParams::default().labels(POD_TEMPLATE_HASH_LABEL)).await?;
    Ok(state_of(&vs, &stable, &canary, &replica_sets.items.iter().collect::<Vec<_>>()))
}

impl TrafficState {
    /// Each Service with its weight and the available pods it selects.
    fn services(&self) -> [(&'static str, i64, i32); 2] {
        // A Service without a hash selects every pod of the app.
        let serving = |hash: &Option<String>| match hash {
            Some(hash) => self.available.get(hash).copied().unwrap_or(0),
            None => self.available.values().sum(),
        };
        let (stable_weight, canary_weight) = self.weights;
        [
            ("stable", stable_weight, serving(&self.stable_selects)),
            ("canary", canary_weight, serving(&self.canary_selects)),
        ]
    }

    /// The Service that receives weight but selects no available pods, if any.
    fn unserved_weight(&self) -> Option<&'static str> {
        self.services().into_iter().find(|(_, weight, pods)| *weight > 0 && *pods == 0).map(|(service, _, _)| service)
    }

    /// No Service selects pods that aren't available (so no weight reaches such a Service), and
    /// the weights add up.
    fn check(&self) -> Result<()> {
        if let Some((service, _, _)) = self.services().into_iter().find(|(_, _, pods)| *pods == 0) {
            bail!("the {service} Service selects no available pods: {self:?}");
        }
        if self.weights.0 + self.weights.1 != 100 {
            bail!("weights don't add up to 100: {self:?}");
        }
        Ok(())
    }
}

/// Watches the VirtualService, the Services and the ReplicaSets, and checks every state the
/// apiserver shows, recording each distinct one.
struct Observer {
    /// Each distinct state, with when the observer saw it.
    states: Arc<Mutex<Vec<(Instant, TrafficState)>>>,
    task: JoinHandle<Result<()>>,
}

/// The objects the observer has seen last.
#[derive(Default)]
struct Seen {
    virtual_service: Option<DynamicObject>,
    services: BTreeMap<String, Service>,
    replica_sets: BTreeMap<String, ReplicaSet>,
    /// Watches that have delivered their first complete list.
    listed: usize,
}

enum Change {
    VirtualService(Box<DynamicObject>),
    Service(Box<Service>),
    ReplicaSet(Box<ReplicaSet>),
    /// An object was deleted: its kind's wrapper, holding its last state.
    Deleted(Box<Change>),
    /// One watch's first list is complete.
    Listed,
}

/// The changes of one watch: its objects, and when its initial list is complete.
fn changes<K>(
    api: Api<K>,
    config: watcher::Config,
    wrap: fn(K) -> Change,
) -> futures::stream::BoxStream<'static, Result<Change, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, config)
        .try_filter_map(move |event| async move {
            Ok(match event {
                watcher::Event::Apply(object) | watcher::Event::InitApply(object) => Some(wrap(object)),
                watcher::Event::Delete(object) => Some(Change::Deleted(Box::new(wrap(object)))),
                watcher::Event::InitDone => Some(Change::Listed),
                _ => None,
            })
        })
        .boxed()
}

impl Seen {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Listed => self.listed += 1,
            Change::VirtualService(vs) => self.virtual_service = Some(*vs),
            Change::Service(service) => {
                self.services.insert(service.name_any(), *service);
            }
            Change::ReplicaSet(rs) => {
                self.replica_sets.insert(rs.name_any(), *rs);
            }
            Change::Deleted(change) => match *change {
                Change::ReplicaSet(rs) => drop(self.replica_sets.remove(&rs.name_any())),
                Change::Service(service) => drop(self.services.remove(&service.name_any())),
                Change::VirtualService(_) => self.virtual_service = None,
                Change::Deleted(_) | Change::Listed => {}
            },
        }
    }

    fn state(&self) -> Option<TrafficState> {
        if self.listed < 3 {
            return None;
        }
        let vs = self.virtual_service.as_ref()?;
        let stable = self.services.get("istio-demo-stable")?;
        let canary = self.services.get("istio-demo-canary")?;
        let replica_sets: Vec<&ReplicaSet> = self.replica_sets.values().collect();
        Some(state_of(vs, stable, canary, &replica_sets))
    }
}

impl Observer {
    /// Fails at the first state that breaks an invariant.
    fn start(ns: &TestNamespace) -> Observer {
        Self::watch(ns, true)
    }

    /// Records every state, broken or not.
    fn record(ns: &TestNamespace) -> Observer {
        Self::watch(ns, false)
    }

    fn watch(ns: &TestNamespace, strict: bool) -> Observer {
        let states = Arc::new(Mutex::new(Vec::<(Instant, TrafficState)>::new()));
        let (recorded, client, namespace) = (states.clone(), ns.client.clone(), ns.name.clone());
        let task = tokio::spawn(async move {
            let config = watcher::Config::default;
            let vs = changes(vs_api(&client, &namespace), config(), |vs| Change::VirtualService(Box::new(vs)));
            let services = changes(Api::<Service>::namespaced(client.clone(), &namespace), config(), |service| {
                Change::Service(Box::new(service))
            });
            let replica_sets = changes(
                Api::<ReplicaSet>::namespaced(client.clone(), &namespace),
                config().labels(POD_TEMPLATE_HASH_LABEL),
                |rs| Change::ReplicaSet(Box::new(rs)),
            );
            let mut changes = futures::stream::select_all([vs, services, replica_sets]);
            let mut seen = Seen::default();
            while let Some(change) = changes.try_next().await? {
                seen.apply(change);
                let Some(state) = seen.state() else { continue };
                let mut states = recorded.lock().expect("observer lock");
                if let (true, Err(error)) = (strict, state.check()) {
                    bail!("{error}\nstates seen before:\n{:#?}", *states);
                }
                if states.last().is_none_or(|(_, last)| *last != state) {
                    states.push((Instant::now(), state));
                }
            }
            Ok(())
        });
        Observer { states, task }
    }

    /// Stops observing; fails if any state broke an invariant.
    async fn finish(self) -> Result<Vec<TrafficState>> {
        Ok(self.finish_timed().await?.into_iter().map(|(_, state)| state).collect())
    }

    /// Like `finish`, with when each state was seen.
    async fn finish_timed(self) -> Result<Vec<(Instant, TrafficState)>> {
        if self.task.is_finished() {
            self.task.await??;
            bail!("the observer stopped early");
        }
        self.task.abort();
        Ok(self.states.lock().expect("observer lock").clone())
    }
}

/// The VirtualService document of the example, as committed.
fn example_virtual_service() -> String {
    let example = read_repo_file("examples/istio-canary.yaml");
    example
        .split("\n---")
        .find(|doc| doc.contains("kind: VirtualService"))
        .expect("the example has a VirtualService")
        .to_string()
}

/// The example, Healthy, with the revision-1 hash.
async fn example_healthy(ns: &TestNamespace) -> Result<String> {
    ns.apply(&read_repo_file("examples/istio-canary.yaml")).await?;
    let healthy = ns.wait_phase(NAME, "Healthy").await?;
    Ok(status(&healthy).stable_rs.unwrap_or_default())
}

async fn wait_traffic(ns: &TestNamespace, what: &str, done: impl Fn(&TrafficState) -> bool) -> Result<TrafficState> {
    poll_until(DEFAULT_TIMEOUT, || async {
        let state = traffic_state(ns).await?;
        Ok(done(&state).then_some(state))
    })
    .await
    .map_err(|e| e.context(format!("waiting for {what}")))
}

fn dedup<T: PartialEq + Clone>(values: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for value in values {
        if out.last() != Some(&value) {
            out.push(value);
        }
    }
    out
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn example_istio_canary_end_to_end_drops_no_traffic() -> Result<()> {
    let ns = TestNamespace::new("traffic-example").await?;
    let _controller = ns.start_controller().await?;
    let rev1 = example_healthy(&ns).await?;
    let initial = traffic_state(&ns).await?;
    assert_eq!(initial.weights, (100, 0));
    assert_eq!(
        (initial.stable_selects.as_deref(), initial.canary_selects.as_deref()),
        (Some(rev1.as_str()), Some(rev1.as_str()))
    );

    let observer = Observer::start(&ns);
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    let rev2 = status(&ns.rollout(NAME).await?).current_pod_hash.unwrap_or_default();
    let at_scale = wait_traffic(&ns, "setCanaryScale replicas 2", |s| s.available.get(&rev2) == Some(&2)).await?;
    assert_eq!(at_scale.weights, (100, 0), "setCanaryScale moves no traffic");

    // Each manual pause, in order: after setWeight 1, 10 and 50.
    for (pause_index, canary_weight, canary_pods) in [(4, 1, 1), (6, 10, 1), (9, 50, 2)] {
        ns.promote(NAME).await?;
        ns.wait_step(NAME, pause_index, "Paused").await?;
        let state = traffic_state(&ns).await?;
        assert_eq!(state.weights, (100 - canary_weight, canary_weight), "at step {pause_index}");
        assert_eq!(state.canary_selects.as_deref(), Some(rev2.as_str()));
        // A scale-down shows in the ReplicaSet's status a moment after the step completes.
        wait_traffic(&ns, &format!("{canary_pods} canary pods at step {pause_index}"), |s| {
            s.available.get(&rev2) == Some(&canary_pods)
        })
        .await?;
    }
    ns.promote(NAME).await?;
    // setWeight 70, 90, 100, then a 15 s pause, then the promotion.
    let healthy = ns.wait_phase(NAME, "Healthy").await?;
    assert_eq!(status(&healthy).stable_rs.as_deref(), Some(rev2.as_str()));
    let done = traffic_state(&ns).await?;
    assert_eq!(done.weights, (100, 0));
    assert_eq!(done.stable_selects.as_deref(), Some(rev2.as_str()));
    assert_eq!(done.available.get(&rev1), Some(&3), "the old pods are kept for scaleDownDelaySeconds");
    wait_traffic(&ns, "the old pods to go after the delay", |s| s.available.get(&rev1) == Some(&0)).await?;
    let states = observer.finish().await?;

    let canary_weights = dedup(states.iter().map(|s| s.weights.1));
    assert_eq!(canary_weights, vec![0, 1, 10, 30, 50, 70, 90, 100, 0], "{states:#?}");
    // The stable Service moved to the new pods only while the canary held all the traffic,
    // and the weights went back only after that.
    let switch = states
        .iter()
        .position(|s| s.stable_selects.as_deref() == Some(rev2.as_str()))
        .expect("stable Service switched");
    assert_eq!(states[switch].weights, (0, 100), "{:#?}", &states[switch.saturating_sub(1)..]);
    assert!(states[..switch].iter().all(|s| s.stable_selects.as_deref() == Some(rev1.as_str())));
    let first_weight = states.iter().position(|s| s.weights.1 > 0).expect("traffic moved");
    assert!(
        states[..=first_weight].iter().any(|s| s.canary_selects.as_deref() == Some(rev2.as_str())),
        "canary Service moved before any weight"
    );
    Ok(())
}

/// Rolls the example to yellow and promotes it to its pause at 10% (weights 90/10).
async fn at_ten_percent(ns: &TestNamespace) -> Result<()> {
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    ns.promote(NAME).await?;
    ns.wait_step(NAME, 4, "Paused").await?;
    ns.promote(NAME).await?;
    ns.wait_step(NAME, 6, "Paused").await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn abort_moves_traffic_back_first_and_scales_the_canary_down_after_the_delay() -> Result<()> {
    let ns = TestNamespace::new("traffic-abort").await?;
    let _controller = ns.start_controller().await?;
    let example = read_repo_file("examples/istio-canary.yaml")
        .replace("trafficRouting:", "abortScaleDownDelaySeconds: 5\n      trafficRouting:");
    ns.apply(&example).await?;
    let rev1 = status(&ns.wait_phase(NAME, "Healthy").await?).stable_rs.unwrap_or_default();
    let observer = Observer::start(&ns);
    at_ten_percent(&ns).await?;
    let rev2 = status(&ns.rollout(NAME).await?).current_pod_hash.unwrap_or_default();

    ns.abort(NAME).await?;
    ns.wait_phase(NAME, "Degraded").await?;
    wait_traffic(&ns, "the canary to scale down", |s| s.available.get(&rev2) == Some(&0)).await?;
    let states = observer.finish().await?;
    let at_ten = states.iter().position(|s| s.weights.1 == 10).expect("10% reached the canary");
    let back = at_ten + states[at_ten..].iter().position(|s| s.weights == (100, 0)).expect("weight back to stable");
    let after = &states[back..];
    let canary_back = after
        .iter()
        .position(|s| s.canary_selects.as_deref() == Some(rev1.as_str()))
        .expect("canary Service back on stable");
    let scaled = after.iter().position(|s| s.available.get(&rev2) == Some(&0)).expect("canary scaled down");
    assert!(canary_back > 0 && scaled > canary_back, "weight, then Service, then pods: {states:#?}");
    let final_state = states.last().expect("states");
    assert_eq!(final_state.available.get(&rev1), Some(&3));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn external_weight_edits_are_put_back() -> Result<()> {
    let ns = TestNamespace::new("traffic-gitops").await?;
    let _controller = ns.start_controller().await?;
    example_healthy(&ns).await?;
    at_ten_percent(&ns).await?;
    // A GitOps re-apply of the VirtualService as committed: 100/0.
    let reapplied = std::time::Instant::now();
    let reapplied_at = Timestamp::now();
    ns.apply(&example_virtual_service()).await?;
    // Put back by a write planned after the re-apply, not merely never changed.
    wait_traffic(&ns, "the weights put back", |s| {
        s.weights == (90, 10) && s.weights_changed_at.is_some_and(|at| at >= reapplied_at)
    })
    .await?;
    assert!(reapplied.elapsed() < Duration::from_secs(10), "put back after {:?}", reapplied.elapsed());
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_missing_virtual_service_is_invalid_until_created() -> Result<()> {
    let ns = TestNamespace::new("traffic-missing-vs").await?;
    let _controller = ns.start_controller().await?;
    example_healthy(&ns).await?;
    vs_api(&ns.client, &ns.name).delete(NAME, &DeleteParams::default()).await?;
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    let invalid = ns.wait_phase(NAME, "Degraded").await?;
    let message = status(&invalid).message.unwrap_or_default();
    assert!(message.contains("VirtualService \"istio-demo\" not found"), "{message}");
    assert_eq!(ns.replica_sets().await?.len(), 1, "nothing is rolled out without its VirtualService");

    ns.apply(&example_virtual_service()).await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn only_the_named_route_is_managed() -> Result<()> {
    let ns = TestNamespace::new("traffic-routes").await?;
    let _controller = ns.start_controller().await?;
    let example = read_repo_file("examples/istio-canary.yaml");
    ns.apply(&example).await?;
    // A second route, e.g. for an internal health endpoint, that the Rollout doesn't manage.
    let mut vs = vs_api(&ns.client, &ns.name).get(NAME).await?;
    let second = json!({"name": "admin", "route": [{"destination": {"host": "istio-demo-stable"}, "weight": 100},
                                                   {"destination": {"host": "istio-demo-canary"}, "weight": 0}]});
    vs.data["spec"]["http"].as_array_mut().expect("http routes").push(second.clone());
    vs.metadata.managed_fields = None;
    vs_api(&ns.client, &ns.name).patch(NAME, &PatchParams::apply("e2e").force(), &Patch::Apply(&vs)).await?;
    ns.wait_phase(NAME, "Healthy").await?;
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    ns.promote(NAME).await?;
    ns.wait_step(NAME, 4, "Paused").await?;
    assert_eq!(traffic_state(&ns).await?.weights, (99, 1));
    let admin = vs_api(&ns.client, &ns.name).get(NAME).await?.data["spec"]["http"][1].clone();
    assert_eq!(admin, second, "the unmanaged route is untouched");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn hpa_scales_a_traffic_routed_rollout() -> Result<()> {
    let ns = TestNamespace::new("traffic-hpa").await?;
    let _controller = ns.start_controller().await?;
    let rev1 = example_healthy(&ns).await?;
    let hpa = json!({"spec": {"minReplicas": 5}});
    ns.api::<HorizontalPodAutoscaler>().patch(NAME, &PatchParams::default(), &Patch::Merge(&hpa)).await?;
    ns.wait_rollout(NAME, "5 replicas from the HPA", |r| {
        r.spec.replicas == Some(5) && status(r).available_replicas == Some(5)
    })
    .await?;
    assert_eq!(traffic_state(&ns).await?.available.get(&rev1), Some(&5));

    // Mid-canary the canary is re-sized for the new count, and no step advances.
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    ns.promote(NAME).await?;
    ns.wait_step(NAME, 4, "Paused").await?;
    let hpa = json!({"spec": {"minReplicas": 7, "maxReplicas": 10}});
    ns.api::<HorizontalPodAutoscaler>().patch(NAME, &PatchParams::default(), &Patch::Merge(&hpa)).await?;
    ns.wait_rollout(NAME, "7 replicas", |r| r.spec.replicas == Some(7)).await?;
    wait_traffic(&ns, "7 stable pods", |s| s.available.get(&rev1) == Some(&7)).await?;
    let ro = ns.rollout(NAME).await?;
    assert_eq!(status(&ro).current_step_index, Some(4));
    assert_eq!(traffic_state(&ns).await?.weights, (99, 1), "scaling changes no weight");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn deleting_the_rollout_releases_its_services() -> Result<()> {
    let ns = TestNamespace::new("traffic-release").await?;
    let _controller = ns.start_controller().await?;
    example_healthy(&ns).await?;
    ns.api::<rollouts_controller::api::Rollout>().delete(NAME, &DeleteParams::background()).await?;
    wait_released(&ns).await?;
    let selector: Option<Value> =
        ns.api::<Service>().get("istio-demo-stable").await?.spec.and_then(|s| s.selector).map(|s| json!(s));
    assert_eq!(selector, Some(json!({"app": "istio-demo"})));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn removing_traffic_routing_releases_the_services() -> Result<()> {
    let ns = TestNamespace::new("traffic-removed").await?;
    let _controller = ns.start_controller().await?;
    example_healthy(&ns).await?;
    let patch = json!({"spec": {"strategy": {"canary": {"trafficRouting": null, "stableService": null, "canaryService": null,
        "steps": [{"setWeight": 50}]}}}});
    ns.patch_spec(NAME, patch).await?;
    wait_released(&ns).await?;
    ns.wait_phase(NAME, "Healthy").await?;
    Ok(())
}

/// Waits until neither Service selects a pod-template hash or is marked as managed.
async fn wait_released(ns: &TestNamespace) -> Result<()> {
    poll_until(DEFAULT_TIMEOUT, || async {
        let services = ns.api::<Service>();
        let mut released = true;
        for name in ["istio-demo-stable", "istio-demo-canary"] {
            let service = services.get(name).await?;
            let selector = service.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
            released &= !selector.contains_key(POD_TEMPLATE_HASH_LABEL)
                && !service.annotations().contains_key(MANAGED_BY_ANNOTATION);
        }
        Ok(released.then_some(()))
    })
    .await
}

/// The example at a 50% canary pause, with a settle gap of `SETTLE` seconds; no controller runs.
const SETTLE: u64 = 3;

async fn paused_at_half(ns: &TestNamespace) -> Result<(String, String)> {
    let controller = ns.start_controller().await?;
    let rev1 = example_healthy(ns).await?;
    let canary = json!({"trafficSettleSeconds": SETTLE, "abortScaleDownDelaySeconds": 2,
                        "steps": [{"setWeight": 50}, {"pause": {}}]});
    ns.patch_spec(NAME, json!({"spec": {"strategy": {"canary": canary}}})).await?;
    ns.wait_phase(NAME, "Healthy").await?;
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    wait_traffic(ns, "50% on the canary", |s| s.weights == (50, 50)).await?;
    controller.stop().await?;
    let rev2 = status(&ns.rollout(NAME).await?).current_pod_hash.unwrap_or_default();
    Ok((rev1, rev2))
}

/// Every write, or only those that move traffic (so the status write recording it is lost).
const CRASH_POINTS: [(&str, CrashPoint); 2] = [
    ("every write", |_| true),
    ("each traffic write", |write| {
        matches!(write, Some(Action::SetVirtualServiceWeights { .. } | Action::SetServiceSelector { .. }))
    }),
];

/// Runs controllers that each crash right after the first write `crash_after` accepts, until
/// `done`; returns how many crashed.
async fn crash_until(
    ns: &TestNamespace,
    crash_after: CrashPoint,
    done: impl Fn(&TrafficState, &str) -> bool,
) -> Result<usize> {
    let mut crashes = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (controller, mut wrote) = ns.start_controller_crashing_after(crash_after).await?;
        loop {
            if done(&traffic_state(ns).await?, &phase(&ns.rollout(NAME).await?)) {
                drop(controller);
                return Ok(crashes);
            }
            if Instant::now() > deadline {
                bail!("not done after {crashes} crashes: {:?}\n{}", traffic_state(ns).await?, ns.describe().await);
            }
            match tokio::time::timeout(Duration::from_millis(200), &mut wrote).await {
                Ok(_) => break,
                Err(_) => continue,
            }
        }
        drop(controller);
        crashes += 1;
    }
}

/// A settle gap: from the first state that `from` accepts to the next that `to` accepts.
struct Gap {
    /// Between the times the controller gave the two changes (the annotations it wrote).
    planned: SignedDuration,
    /// Between the times this test's watch saw them.
    seen: Duration,
}

type Moment<'a> = (&'a dyn Fn(&TrafficState) -> bool, fn(&TrafficState) -> Option<Timestamp>);

fn gap(states: &[(Instant, TrafficState)], (from, from_time): Moment, (to, to_time): Moment) -> Result<Gap> {
    let Some(start) = states.iter().position(|(_, s)| from(s)) else { bail!("first state not seen: {states:#?}") };
    let Some(end) = states[start..].iter().position(|(_, s)| to(s)) else {
        bail!("second state not seen: {states:#?}")
    };
    let ((seen_from, first), (seen_to, second)) = (&states[start], &states[start + end]);
    let (Some(planned_from), Some(planned_to)) = (from_time(first), to_time(second)) else {
        bail!("a change without its time: {first:?} then {second:?}");
    };
    Ok(Gap { planned: planned_to.duration_since(planned_from), seen: seen_to.duration_since(*seen_from) })
}

impl Gap {
    /// At least `settle` apart as the controller timed the two changes, and as a watch saw them
    /// give or take the latency of a write (each change is timed just before it is written).
    fn check(&self, settle: Duration, what: &str, states: &[(Instant, TrafficState)]) -> Result<()> {
        let Gap { planned, seen } = self;
        if *planned < SignedDuration::try_from(settle)? || *seen + WRITE_LATENCY < settle {
            bail!("{what} {planned} after the change before (seen {seen:?} after): {states:#?}");
        }
        Ok(())
    }
}

const WRITE_LATENCY: Duration = Duration::from_millis(500);
const WEIGHTS: fn(&TrafficState) -> Option<Timestamp> = |s| s.weights_changed_at;
const STABLE_SERVICE: fn(&TrafficState) -> Option<Timestamp> = |s| s.stable_changed_at;
const CANARY_SERVICE: fn(&TrafficState) -> Option<Timestamp> = |s| s.canary_changed_at;

/// A Rollout paused at half (revisions `rev1` stable, `rev2` canary), then promoted or aborted
/// under controllers that crash after each write `crash_after` accepts, until `done`.
struct CrashRun {
    rev1: String,
    rev2: String,
    crashes: usize,
    /// What the watch saw, from just before the promotion or abort.
    states: Vec<(Instant, TrafficState)>,
}

impl CrashRun {
    async fn promote_or_abort(
        prefix: &str,
        promote: bool,
        crash_after: CrashPoint,
        done: impl Fn(&TrafficState, &str, (&str, &str)) -> bool,
    ) -> Result<Self> {
        let ns = TestNamespace::new(prefix).await?;
        let (rev1, rev2) = paused_at_half(&ns).await?;
        let observer = Observer::start(&ns);
        if promote {
            ns.promote(NAME).await?
        } else {
            ns.abort(NAME).await?
        }
        let crashes = crash_until(&ns, crash_after, |s, phase| done(s, phase, (&rev1, &rev2))).await?;
        Ok(CrashRun { rev1, rev2, crashes, states: observer.finish_timed().await? })
    }
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn a_promotion_keeps_its_settle_gaps_when_the_controller_dies_after_any_write() -> Result<()> {
    for (crash_points, crash_after) in CRASH_POINTS {
        let done = |s: &TrafficState, phase: &str, (_, rev2): (&str, &str)| {
            phase == "Healthy" && s.stable_selects.as_deref() == Some(rev2) && s.weights == (100, 0)
        };
        let CrashRun { rev2, crashes, states, .. } =
            CrashRun::promote_or_abort("traffic-crash-promote", true, crash_after, done).await?;
        let on_rev2 = |s: &TrafficState| s.stable_selects.as_deref() == Some(rev2.as_str());
        let settle = Duration::from_secs(SETTLE);
        let all_to_canary = |s: &TrafficState| s.weights == (0, 100);
        let all_to_stable = |s: &TrafficState| s.weights == (100, 0);
        let switch = gap(&states, (&all_to_canary, WEIGHTS), (&on_rev2, STABLE_SERVICE))?;
        let home = gap(&states, (&on_rev2, STABLE_SERVICE), (&all_to_stable, WEIGHTS))?;
        println!(
            "crash after {crash_points}: {crashes} crashes; gaps {} and {} (seen {:?} and {:?})",
            switch.planned, home.planned, switch.seen, home.seen
        );
        switch.check(settle, "the stable Service switched", &states)?;
        home.check(settle, "the weights returned", &states)?;
    }
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn an_abort_keeps_its_settle_gap_when_the_controller_dies_after_any_write() -> Result<()> {
    for (crash_points, crash_after) in CRASH_POINTS {
        let done = |s: &TrafficState, _: &str, (rev1, rev2): (&str, &str)| {
            s.canary_selects.as_deref() == Some(rev1) && s.available.get(rev2).copied() == Some(0)
        };
        let CrashRun { rev1, crashes, states, .. } =
            CrashRun::promote_or_abort("traffic-crash-abort", false, crash_after, done).await?;
        let canary_home = |s: &TrafficState| s.canary_selects.as_deref() == Some(rev1.as_str());
        let all_to_stable = |s: &TrafficState| s.weights == (100, 0);
        let back = gap(&states, (&all_to_stable, WEIGHTS), (&canary_home, CANARY_SERVICE))?;
        println!("crash after {crash_points}: {crashes} crashes; gap {} (seen {:?})", back.planned, back.seen);
        back.check(Duration::from_secs(SETTLE), "the canary Service went back", &states)?;
    }
    Ok(())
}

/// What an adversary does to the objects a Rollout manages.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    StableSelector,
    CanarySelector,
    Weights,
    DeleteStableReplicaSet,
    ScaleDeployment,
}

const TAMPERING: [Tamper; 5] = [
    Tamper::StableSelector,
    Tamper::CanarySelector,
    Tamper::Weights,
    Tamper::DeleteStableReplicaSet,
    Tamper::ScaleDeployment,
];

async fn tamper(ns: &TestNamespace, what: Tamper) -> Result<()> {
    let services = ns.api::<Service>();
    let nowhere = Patch::Merge(json!({"spec": {"selector": {POD_TEMPLATE_HASH_LABEL: "nowhere"}}}));
    match what {
        Tamper::StableSelector => drop(services.patch("istio-demo-stable", &PatchParams::default(), &nowhere).await?),
        Tamper::CanarySelector => drop(services.patch("istio-demo-canary", &PatchParams::default(), &nowhere).await?),
        Tamper::Weights => {
            ns.apply(&example_virtual_service().replace("weight: 100", "weight: 50").replace("weight: 0", "weight: 50"))
                .await?
        }
        Tamper::DeleteStableReplicaSet => {
            let stable = status(&ns.rollout(NAME).await?).stable_rs.unwrap_or_default();
            ns.api::<ReplicaSet>().delete(&format!("{NAME}-{stable}"), &DeleteParams::background()).await?;
        }
        Tamper::ScaleDeployment => {
            let patch = Patch::Merge(json!({"spec": {"replicas": 3}}));
            ns.api::<Deployment>().patch(NAME, &PatchParams::default(), &patch).await?;
        }
    }
    Ok(())
}

/// The longest a Service received weight while it selected no available pods; fails if one
/// still does at the end.
fn longest_unserved(states: &[(Instant, TrafficState)]) -> Result<Duration> {
    let mut longest = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for (at, state) in states {
        match (state.unserved_weight(), since) {
            (Some(_), None) => since = Some(*at),
            (None, Some(start)) => {
                longest = longest.max(at.duration_since(start));
                since = None;
            }
            _ => {}
        }
    }
    if since.is_some() {
        bail!("a Service still receives weight without available pods: {:?}", states.last());
    }
    Ok(longest)
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn tampered_objects_are_repaired_and_the_rollout_completes() -> Result<()> {
    let ns = TestNamespace::new("traffic-tamper").await?;
    let _controller = ns.start_controller().await?;
    let rev1 = example_healthy(&ns).await?;
    let canary = json!({"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "3s"}}]});
    ns.patch_spec(NAME, json!({"spec": {"strategy": {"canary": canary}}})).await?;
    ns.wait_phase(NAME, "Healthy").await?;
    ns.set_deployment_image(NAME, "demo", "argoproj/rollouts-demo:yellow").await?;
    ns.wait_step(NAME, 1, "Paused").await?;
    let rev2 = status(&ns.rollout(NAME).await?).current_pod_hash.unwrap_or_default();
    let deployment_replicas =
        || async { Ok::<_, anyhow::Error>(ns.api::<Deployment>().get(NAME).await?.spec.and_then(|s| s.replicas)) };
    let observer = Observer::record(&ns);

    // While paused: each change is put right.
    for what in TAMPERING {
        let tampered_at = Timestamp::now();
        tamper(&ns, what).await?;
        // The object tampered with was written again afterwards.
        let rewritten = |s: &TrafficState| {
            let changed_at = match what {
                Tamper::StableSelector => s.stable_changed_at,
                Tamper::CanarySelector => s.canary_changed_at,
                Tamper::Weights => s.weights_changed_at,
                Tamper::DeleteStableReplicaSet | Tamper::ScaleDeployment => return true,
            };
            changed_at.is_some_and(|at| at >= tampered_at)
        };
        let repaired = |s: &TrafficState| {
            rewritten(s)
                && s.weights == (90, 10)
                && s.stable_selects.as_deref() == Some(rev1.as_str())
                && s.canary_selects.as_deref() == Some(rev2.as_str())
                && s.available.get(&rev1) == Some(&3)
        };
        wait_traffic(&ns, &format!("{what:?} repaired"), repaired).await?;
        poll_until(DEFAULT_TIMEOUT, || async { Ok((deployment_replicas().await? == Some(0)).then_some(())) })
            .await
            .map_err(|e| e.context(format!("the Deployment scaled down again after {what:?}")))?;
    }
    // While it moves: the same, one after another without waiting.
    ns.promote(NAME).await?;
    for what in TAMPERING {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tamper(&ns, what).await?;
    }
    let healthy = ns.wait_phase(NAME, "Healthy").await?;
    assert_eq!(status(&healthy).stable_rs.as_deref(), Some(rev2.as_str()));
    let done = wait_traffic(&ns, "all traffic on the new stable", |s| {
        s.weights == (100, 0) && s.stable_selects.as_deref() == Some(rev2.as_str())
    })
    .await?;
    assert_eq!(done.canary_selects.as_deref(), Some(rev2.as_str()));
    let states = observer.finish_timed().await?;
    let longest = longest_unserved(&states)?;
    println!("longest time a Service had weight but no available pods: {longest:?}");
    assert!(longest < Duration::from_secs(10), "repairs took {longest:?}: {states:#?}");
    Ok(())
}
