//! Where a Rollout's traffic goes, for any Rollout: the stable and canary Services' selectors,
//! the weights of an Istio VirtualService or an ApisixRoute when there is one, and the available
//! pods of each ReplicaSet. A watch checks every state the apiserver goes through (in
//! resourceVersion order) against the request-safety invariants of `docs/architecture.md`: no
//! Service is pointed at a ReplicaSet without available pods (so no weight reaches one), and the
//! weights add up to 100.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use rollouts_controller::api::{POD_TEMPLATE_HASH_LABEL, TRAFFIC_CHANGED_ANNOTATION};
use tokio::task::JoinHandle;

use crate::{DEFAULT_TIMEOUT, TestNamespace, poll_until};

/// The objects that carry one Rollout's traffic.
#[derive(Clone, Debug)]
pub struct Routing {
    pub stable_service: String,
    pub canary_service: String,
    /// The route whose rule weighs the two Services: its kind (a key of `ROUTE_KINDS`) and name.
    pub route: Option<Key>,
}

impl Routing {
    /// Traffic split by the two Services' pods alone.
    pub fn services(stable: &str, canary: &str) -> Self {
        Routing { stable_service: stable.into(), canary_service: canary.into(), route: None }
    }

    /// Traffic weighed by the route `name` of `kind`, e.g. ("VirtualService", "web").
    pub fn through(self, kind: &'static str, name: &str) -> Self {
        route_kind(kind);
        Routing { route: Some((kind, name.into())), ..self }
    }

    fn weighted(&self) -> Option<Key> {
        self.route.clone()
    }
}

/// The kinds of weighted routes: (kind, group, version), how a route lists its rules, a rule its
/// destinations, and a destination its Service; and the weight of a destination without one.
const ROUTE_KINDS: [(&str, &str, &str, [&str; 3], i64); 4] = [
    ("VirtualService", "networking.istio.io", "v1", ["http", "route", "/destination/host"], 0),
    ("ApisixRoute", "apisix.apache.org", "v2", ["http", "backends", "/serviceName"], 100),
    ("HTTPRoute", "gateway.networking.k8s.io", "v1", ["rules", "backendRefs", "/name"], 1),
    ("GRPCRoute", "gateway.networking.k8s.io", "v1", ["rules", "backendRefs", "/name"], 1),
];

/// Traffic at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficState {
    /// (stable, canary) weights of the VirtualService's route, with one.
    pub weights: Option<(i64, i64)>,
    /// The pod-template hash each Service selects (none: every pod of the app).
    pub stable_selects: Option<String>,
    pub canary_selects: Option<String>,
    /// Available pods by pod-template hash.
    pub available: BTreeMap<String, i32>,
    /// When the controller planned the last change of each (its `traffic-changed-at`).
    pub weights_changed_at: Option<Timestamp>,
    pub stable_changed_at: Option<Timestamp>,
    pub canary_changed_at: Option<Timestamp>,
}

impl TrafficState {
    /// The available pods a Service selecting `hash` reaches.
    fn serving(&self, hash: &Option<String>) -> i32 {
        match hash {
            Some(hash) => self.available.get(hash).copied().unwrap_or(0),
            None => self.available.values().sum(),
        }
    }

    /// Fails if a Service selects no available pods, or the weights don't add up to 100.
    pub fn check(&self) -> Result<()> {
        for (service, selects) in [("stable", &self.stable_selects), ("canary", &self.canary_selects)] {
            if self.serving(selects) == 0 {
                bail!("the {service} Service selects no available pods: {self:?}");
            }
        }
        if let Some((stable, canary)) = self.weights
            && stable + canary != 100
        {
            bail!("weights don't add up to 100: {self:?}");
        }
        Ok(())
    }

    /// Whether everything goes to the pods of `hash`: both Services select them and the
    /// canary has no weight.
    pub fn all_on(&self, hash: &str) -> bool {
        self.stable_selects.as_deref() == Some(hash)
            && self.canary_selects.as_deref() == Some(hash)
            && self.weights.is_none_or(|(_, canary)| canary == 0)
    }
}

/// What one object contributes to a state.
#[derive(Clone, Debug)]
enum Entry {
    Service { selects: Option<String>, changed_at: Option<Timestamp> },
    ReplicaSet { hash: String, available: i32 },
    Route { weights: Option<(i64, i64)>, changed_at: Option<Timestamp> },
}

fn changed_at<K: Resource>(object: &K) -> Option<Timestamp> {
    object.meta().annotations.as_ref()?.get(TRAFFIC_CHANGED_ANNOTATION)?.parse().ok()
}

fn service_entry(service: &Service) -> Entry {
    let selects = service.spec.as_ref().and_then(|s| s.selector.as_ref()?.get(POD_TEMPLATE_HASH_LABEL).cloned());
    Entry::Service { selects, changed_at: changed_at(service) }
}

fn replica_set_entry(rs: &ReplicaSet) -> Entry {
    let hash = rs.labels().get(POD_TEMPLATE_HASH_LABEL).cloned().unwrap_or_default();
    Entry::ReplicaSet { hash, available: rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) }
}

fn route_kind(kind: &str) -> (&'static str, &'static str, &'static str, [&'static str; 3], i64) {
    ROUTE_KINDS.into_iter().find(|(k, ..)| *k == kind).expect("a weighted route kind")
}

/// The weights of the first route (a VirtualService's `http` route, an ApisixRoute's rule) that
/// sends traffic to both Services.
fn route_entry(kind: &str, route: &DynamicObject, routing: &Routing) -> Entry {
    let (.., [rules, targets, service], default_weight) = route_kind(kind);
    let weight_of = |rule: &serde_json::Value, name: &str| {
        let target = rule[targets].as_array()?.iter().find(|t| t.pointer(service).is_some_and(|v| v == name))?;
        Some(target["weight"].as_i64().unwrap_or(default_weight))
    };
    let weights =
        route.data["spec"][rules].as_array().into_iter().flatten().find_map(|rule| {
            Some((weight_of(rule, &routing.stable_service)?, weight_of(rule, &routing.canary_service)?))
        });
    Entry::Route { weights, changed_at: changed_at(route) }
}

/// The entries of every object seen, by kind and name.
type Entries = BTreeMap<Key, Entry>;

fn state_of(entries: &Entries, routing: &Routing) -> Option<TrafficState> {
    let service = |name: &str| match entries.get(&("Service", name.to_string())) {
        Some(Entry::Service { selects, changed_at }) => Some((selects.clone(), *changed_at)),
        _ => None,
    };
    let (stable_selects, stable_changed_at) = service(&routing.stable_service)?;
    let (canary_selects, canary_changed_at) = service(&routing.canary_service)?;
    let (weights, weights_changed_at) = match routing.weighted() {
        None => (None, None),
        Some(key) => match entries.get(&key)? {
            Entry::Route { weights, changed_at } => (Some((*weights)?), *changed_at),
            _ => return None,
        },
    };
    let available = entries
        .values()
        .filter_map(|entry| match entry {
            Entry::ReplicaSet { hash, available } => Some((hash.clone(), *available)),
            _ => None,
        })
        .collect();
    Some(TrafficState {
        weights,
        stable_selects,
        canary_selects,
        available,
        weights_changed_at,
        stable_changed_at,
        canary_changed_at,
    })
}

fn routes(client: &Client, namespace: &str, kind: &str) -> Api<DynamicObject> {
    let (kind, group, version, ..) = route_kind(kind);
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

fn replica_set_selector() -> ListParams {
    ListParams::default().labels(POD_TEMPLATE_HASH_LABEL)
}

/// What one watch event changes.
enum Update {
    /// An object of the first list: part of the starting state.
    Initial(Key, Entry),
    /// A change after it (`None`: a deletion), with the resourceVersion it was made at.
    Changed { version: u64, key: Key, entry: Option<Entry> },
    /// One watch has delivered its first complete list.
    Listed,
}

type Key = (&'static str, String);

fn updates<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    entry: impl Fn(&K) -> Entry + Send + 'static,
) -> BoxStream<'static, Result<Update>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let version = |object: &K| object.resource_version().and_then(|v| v.parse().ok()).unwrap_or(0);
    watcher::watcher(api, config)
        .map_err(anyhow::Error::from)
        .try_filter_map(move |event| {
            let update = match event {
                watcher::Event::InitApply(object) => Some(Update::Initial((kind, object.name_any()), entry(&object))),
                watcher::Event::Apply(object) => Some(Update::Changed {
                    version: version(&object),
                    key: (kind, object.name_any()),
                    entry: Some(entry(&object)),
                }),
                watcher::Event::Delete(object) => {
                    Some(Update::Changed { version: version(&object), key: (kind, object.name_any()), entry: None })
                }
                watcher::Event::InitDone => Some(Update::Listed),
                watcher::Event::Init => None,
            };
            futures::future::ready(Ok(update))
        })
        .boxed()
}

/// How long a change waits before it counts. Each kind has a watch of its own, and two watches
/// may deliver in another order than the apiserver made the changes (a Service switched, then
/// the ReplicaSet it left scaled down, can arrive the other way round): changes are taken in
/// resourceVersion order (etcd's revision, which orders all of them) once this has passed.
const REORDER: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(100);

/// Every distinct traffic state a watch has seen, with when.
pub type TrafficStates = Vec<(Instant, TrafficState)>;

/// Checks and records each state.
struct Recorder {
    routing: Routing,
    states: Arc<Mutex<TrafficStates>>,
}

impl Recorder {
    fn record(&self, entries: &Entries, at: Instant) -> Result<()> {
        let Some(state) = state_of(entries, &self.routing) else { return Ok(()) };
        let mut states = self.states.lock().expect("traffic watch lock");
        if let Err(error) = state.check() {
            bail!("{error}\nstates seen before:\n{:#?}", *states);
        }
        if states.last().is_none_or(|(_, last)| *last != state) {
            states.push((at, state));
        }
        Ok(())
    }
}

/// A watch of one Rollout's traffic that fails at the first state breaking an invariant.
pub struct TrafficWatch {
    states: Arc<Mutex<TrafficStates>>,
    task: JoinHandle<Result<()>>,
}

impl TestNamespace {
    /// Watches `routing` from now on; returns once every watch has listed its objects.
    pub async fn watch_traffic(&self, routing: &Routing) -> Result<TrafficWatch> {
        let (client, namespace) = (self.client.clone(), self.name.clone());
        let config = watcher::Config::default;
        let mut streams = vec![
            updates(Api::<Service>::namespaced(client.clone(), &namespace), config(), "Service", service_entry),
            updates(
                Api::<ReplicaSet>::namespaced(client.clone(), &namespace),
                config().labels(POD_TEMPLATE_HASH_LABEL),
                "ReplicaSet",
                replica_set_entry,
            ),
        ];
        if let Some((kind, _)) = routing.weighted() {
            let routing = routing.clone();
            let route =
                updates(routes(&client, &namespace, kind), config(), kind, move |r| route_entry(kind, r, &routing));
            streams.push(route);
        }
        let watches = streams.len();
        let (listed, is_listed) = tokio::sync::oneshot::channel();
        let states = Arc::new(Mutex::new(TrafficStates::new()));
        let recorder = Recorder { routing: routing.clone(), states: states.clone() };
        let task = tokio::spawn(async move {
            let mut updates = futures::stream::select_all(streams);
            let (mut entries, mut lists, mut listed) = (Entries::new(), 0, Some(listed));
            // Changes waiting out REORDER, by resourceVersion (then arrival).
            let mut held = BTreeMap::<(u64, u64), (Instant, Key, Option<Entry>)>::new();
            let (mut arrivals, mut tick) = (0, tokio::time::interval(TICK));
            loop {
                tokio::select! {
                    update = updates.try_next() => match update? {
                        None => break,
                        Some(Update::Initial(key, entry)) => drop(entries.insert(key, entry)),
                        Some(Update::Changed { version, key, entry }) => {
                            arrivals += 1;
                            held.insert((version, arrivals), (Instant::now(), key, entry));
                        }
                        Some(Update::Listed) => {
                            lists += 1;
                            if lists == watches && let Some(listed) = listed.take() {
                                let _ = listed.send(());
                                recorder.record(&entries, Instant::now())?;
                            }
                        }
                    },
                    _ = tick.tick() => {}
                }
                // Nothing counts before every watch has listed.
                let ready = |e: &std::collections::btree_map::OccupiedEntry<_, (Instant, _, _)>| {
                    lists >= watches && e.get().0.elapsed() >= REORDER
                };
                while let Some(oldest) = held.first_entry().filter(ready) {
                    let (at, key, entry) = oldest.remove();
                    match entry {
                        Some(entry) => drop(entries.insert(key, entry)),
                        None => drop(entries.remove(&key)),
                    }
                    recorder.record(&entries, at)?;
                }
            }
            Ok(())
        });
        if is_listed.await.is_err() {
            let error = match task.await {
                Ok(Err(error)) => error,
                _ => anyhow!("the traffic watch stopped"),
            };
            bail!("the traffic watch stopped before listing: {error:#}");
        }
        Ok(TrafficWatch { states, task })
    }

    /// The traffic of `routing` now, read with plain GETs.
    pub async fn traffic(&self, routing: &Routing) -> Result<TrafficState> {
        let mut entries = Entries::new();
        for name in [&routing.stable_service, &routing.canary_service] {
            entries.insert(("Service", name.clone()), service_entry(&self.api::<Service>().get(name).await?));
        }
        for rs in self.api::<ReplicaSet>().list(&replica_set_selector()).await? {
            entries.insert(("ReplicaSet", rs.name_any()), replica_set_entry(&rs));
        }
        if let Some((kind, name)) = routing.weighted() {
            let route = routes(&self.client, &self.name, kind).get(&name).await?;
            entries.insert((kind, name), route_entry(kind, &route, routing));
        }
        state_of(&entries, routing).ok_or_else(|| anyhow!("{routing:?} has no weights for both Services"))
    }

    /// Polls the traffic of `routing` until `done` holds.
    pub async fn wait_traffic(
        &self,
        routing: &Routing,
        what: &str,
        done: impl Fn(&TrafficState) -> bool,
    ) -> Result<TrafficState> {
        poll_until(DEFAULT_TIMEOUT, || async {
            let state = self.traffic(routing).await?;
            Ok(done(&state).then_some(state))
        })
        .await
        .map_err(|error| error.context(format!("waiting for {what}")))
    }
}

impl TrafficWatch {
    /// Stops watching once what happened until now has counted; fails if a state broke an
    /// invariant. Returns each distinct state seen (timed by its last change's arrival).
    pub async fn finish(self) -> Result<TrafficStates> {
        tokio::time::sleep(REORDER + 2 * TICK).await;
        if self.task.is_finished() {
            self.task.await??;
            bail!("the traffic watch stopped early");
        }
        self.task.abort();
        Ok(self.states.lock().expect("traffic watch lock").clone())
    }
}
