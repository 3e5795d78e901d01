//! Caches fed by watches, scoped to what the controller manages so memory grows with the
//! Rollouts, not with the cluster.
//!
//! - `Cache<K>` holds the objects of one watch by namespace/name, with one secondary index (e.g.
//!   ReplicaSets by owner), and can keep only the objects a predicate accepts.
//! - `References` records which objects each Rollout references (its Deployment, Services,
//!   VirtualServices, analysis templates), so their caches keep only those and their events wake
//!   the right Rollouts.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::Resource;
use kube::runtime::watcher::Event;

/// namespace, name
pub type Key = (String, String);

pub fn key_of<K: Resource>(object: &K) -> Key {
    let meta = object.meta();
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

struct State<K> {
    objects: HashMap<Key, Arc<K>>,
    index: HashMap<String, BTreeSet<Key>>,
    /// Objects of a re-list in progress, swapped in when it completes.
    relist: Option<HashMap<Key, Arc<K>>>,
    synced: bool,
}

/// Objects of one watch, by key and by one secondary index.
pub struct Cache<K> {
    state: RwLock<State<K>>,
    index_of: fn(&K) -> Option<String>,
}

impl<K: Resource> Cache<K> {
    pub fn new(index_of: fn(&K) -> Option<String>) -> Self {
        let state = State { objects: HashMap::new(), index: HashMap::new(), relist: None, synced: false };
        Cache { state: RwLock::new(state), index_of }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State<K>> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<K>> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the first complete list has arrived.
    pub fn synced(&self) -> bool {
        self.read().synced
    }

    pub fn get(&self, key: &Key) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Objects whose index value is `value`.
    pub fn indexed(&self, value: &str) -> Vec<Arc<K>> {
        let state = self.read();
        state.index.get(value).into_iter().flatten().filter_map(|key| state.objects.get(key).cloned()).collect()
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts (or, with `None`, removes) one object outside the watch, e.g. after a GET.
    pub fn put(&self, key: Key, object: Option<K>) {
        let mut state = self.write();
        self.remove_locked(&mut state, &key);
        if let Some(object) = object {
            self.insert_locked(&mut state, key, Arc::new(object));
        }
    }

    fn insert_locked(&self, state: &mut State<K>, key: Key, object: Arc<K>) {
        if let Some(value) = (self.index_of)(&object) {
            state.index.entry(value).or_default().insert(key.clone());
        }
        state.objects.insert(key, object);
    }

    fn remove_locked(&self, state: &mut State<K>, key: &Key) -> Option<Arc<K>> {
        let old = state.objects.remove(key)?;
        if let Some(value) = (self.index_of)(&old)
            && let Some(keys) = state.index.get_mut(&value)
        {
            keys.remove(key);
            if keys.is_empty() {
                state.index.remove(&value);
            }
        }
        Some(old)
    }

    /// Applies a watch event, keeping only objects `keep` accepts. Returns the objects that
    /// changed, appeared or disappeared (the last known version of those that went away).
    pub fn apply(&self, event: Event<K>, keep: impl Fn(&Key) -> bool) -> Vec<Arc<K>> {
        let mut state = self.write();
        match event {
            Event::Apply(object) => {
                let key = key_of(&object);
                self.remove_locked(&mut state, &key);
                let object = Arc::new(object);
                if keep(&key) {
                    self.insert_locked(&mut state, key, object.clone());
                }
                vec![object]
            }
            Event::Delete(object) => {
                let key = key_of(&object);
                self.remove_locked(&mut state, &key);
                vec![Arc::new(object)]
            }
            Event::Init => {
                state.relist = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                let key = key_of(&object);
                if keep(&key) {
                    state.relist.get_or_insert_with(HashMap::new).insert(key, Arc::new(object));
                }
                Vec::new()
            }
            Event::InitDone => {
                let fresh = state.relist.take().unwrap_or_default();
                let version = |o: &Arc<K>| o.meta().resource_version.clone();
                let mut changed: Vec<Arc<K>> = state
                    .objects
                    .iter()
                    .filter(|(key, old)| fresh.get(*key).map(version) != Some(version(old)))
                    .map(|(key, old)| fresh.get(key).unwrap_or(old).clone())
                    .collect();
                changed
                    .extend(fresh.iter().filter(|(key, _)| !state.objects.contains_key(*key)).map(|(_, o)| o.clone()));
                let old_keys: Vec<Key> = state.objects.keys().cloned().collect();
                for key in old_keys {
                    self.remove_locked(&mut state, &key);
                }
                for (key, object) in fresh {
                    self.insert_locked(&mut state, key, object);
                }
                state.synced = true;
                changed
            }
        }
    }
}

/// A Rollout, by namespace/name.
pub type RolloutKey = Key;

#[derive(Default)]
struct Links {
    /// Referenced object -> the Rollouts that reference it.
    rollouts: HashMap<Key, BTreeSet<RolloutKey>>,
    /// Rollout -> the objects it references.
    targets: HashMap<RolloutKey, Vec<Key>>,
    /// References whose presence the cache has not yet confirmed (the object may have been
    /// filtered out before it was referenced), with the epoch they were made in.
    unconfirmed: HashMap<Key, u64>,
    /// Advanced each time a list of the watched objects begins.
    epoch: u64,
}

/// Which objects of one kind the Rollouts reference.
#[derive(Default)]
pub struct References {
    links: RwLock<Links>,
}

impl References {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Links> {
        self.links.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Links> {
        self.links.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records what `rollout` references now. Returns what it referenced before and no longer
    /// does, so the caller can release those objects.
    pub fn set(&self, rollout: &RolloutKey, targets: Vec<Key>) -> Vec<Key> {
        let mut links = self.write();
        if links.targets.get(rollout).is_some_and(|current| *current == targets) {
            return Vec::new();
        }
        let previous = Self::unlink(&mut links, rollout);
        for target in &targets {
            let referrers = links.rollouts.entry(target.clone()).or_default();
            let first = referrers.is_empty();
            referrers.insert(rollout.clone());
            if first {
                let epoch = links.epoch;
                links.unconfirmed.insert(target.clone(), epoch);
            }
        }
        let dropped = previous.into_iter().filter(|old| !targets.contains(old)).collect();
        if !targets.is_empty() {
            links.targets.insert(rollout.clone(), targets);
        }
        dropped
    }

    pub fn remove(&self, rollout: &RolloutKey) {
        Self::unlink(&mut self.write(), rollout);
    }

    /// Removes the links of `rollout`; returns what it referenced.
    fn unlink(links: &mut Links, rollout: &RolloutKey) -> Vec<Key> {
        let targets = links.targets.remove(rollout).unwrap_or_default();
        for target in &targets {
            if let Some(referrers) = links.rollouts.get_mut(target) {
                referrers.remove(rollout);
                if referrers.is_empty() {
                    links.rollouts.remove(target);
                    links.unconfirmed.remove(target);
                }
            }
        }
        targets
    }

    pub fn is_referenced(&self, target: &Key) -> bool {
        self.read().rollouts.contains_key(target)
    }

    /// Whether a cache miss for `target` may be stale (it was referenced only recently).
    pub fn unconfirmed(&self, target: &Key) -> bool {
        self.read().unconfirmed.contains_key(target)
    }

    pub fn confirm(&self, target: &Key) {
        self.write().unconfirmed.remove(target);
    }

    /// A list of the watched objects begins; returns its epoch for `confirm_listed`.
    pub fn begin_list(&self) -> u64 {
        let mut links = self.write();
        links.epoch += 1;
        links.epoch - 1
    }

    /// A list that began at `epoch` is complete: the presence of everything referenced before it
    /// began is known. (What was referenced during it may have been filtered out.)
    pub fn confirm_listed(&self, epoch: u64) {
        self.write().unconfirmed.retain(|_, referenced| *referenced > epoch);
    }

    /// What `rollout` references now.
    pub fn targets(&self, rollout: &RolloutKey) -> Vec<Key> {
        self.read().targets.get(rollout).cloned().unwrap_or_default()
    }

    pub fn rollouts_for(&self, target: &Key) -> Vec<RolloutKey> {
        self.read().rollouts.get(target).map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every Rollout that references something of this kind.
    pub fn all_rollouts(&self) -> Vec<RolloutKey> {
        self.read().targets.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().rollouts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::ObjectMeta;

    fn service(name: &str, version: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    #[test]
    fn keeps_only_what_is_referenced_and_reports_changes() {
        let cache: Cache<Service> = Cache::new(|_| None);
        let refs = References::default();
        assert!(refs.set(&key("ro"), vec![key("a")]).is_empty());
        let keep = |k: &Key| refs.is_referenced(k);
        let keys = |objects: Vec<Arc<Service>>| objects.iter().map(|o| key_of(o.as_ref())).collect::<Vec<_>>();
        assert_eq!(keys(cache.apply(Event::Apply(service("a", "1")), keep)), vec![key("a")]);
        cache.apply(Event::Apply(service("b", "1")), keep);
        assert!(cache.get(&key("a")).is_some());
        assert!(cache.get(&key("b")).is_none(), "unreferenced objects are not kept");
        assert_eq!(refs.rollouts_for(&key("a")), vec![key("ro")]);

        // A re-list reports what changed, appeared or went away.
        let epoch = refs.begin_list();
        cache.apply(Event::Init, keep);
        cache.apply(Event::InitApply(service("a", "2")), keep);
        let changed = cache.apply(Event::InitDone, keep);
        refs.confirm_listed(epoch);
        assert_eq!(keys(changed), vec![key("a")]);
        assert!(cache.synced());
        assert!(!refs.unconfirmed(&key("a")));

        refs.remove(&key("ro"));
        assert!(!refs.is_referenced(&key("a")));
        assert_eq!(keys(cache.apply(Event::Delete(service("a", "3")), |_| true)), vec![key("a")]);
        assert!(cache.is_empty());
    }

    #[test]
    fn secondary_index_follows_updates() {
        let cache: Cache<Service> = Cache::new(|s| s.metadata.labels.as_ref().and_then(|l| l.get("owner").cloned()));
        let mut owned = service("a", "1");
        owned.metadata.labels = Some([("owner".to_string(), "x".to_string())].into());
        cache.apply(Event::Apply(owned), |_| true);
        assert_eq!(cache.indexed("x").len(), 1);
        cache.apply(Event::Apply(service("a", "2")), |_| true);
        assert!(cache.indexed("x").is_empty());
    }

    #[test]
    fn a_list_confirms_only_what_was_referenced_before_it_began() {
        let refs = References::default();
        refs.set(&key("r1"), vec![key("before")]);
        let epoch = refs.begin_list();
        refs.set(&key("r2"), vec![key("during")]);
        refs.confirm_listed(epoch);
        assert!(!refs.unconfirmed(&key("before")));
        assert!(refs.unconfirmed(&key("during")), "the list may have passed it before it was referenced");
    }

    #[test]
    fn new_references_are_unconfirmed_until_checked() {
        let refs = References::default();
        refs.set(&key("r1"), vec![key("svc")]);
        assert!(refs.unconfirmed(&key("svc")));
        refs.confirm(&key("svc"));
        assert!(!refs.unconfirmed(&key("svc")));
        refs.set(&key("r2"), vec![key("svc")]);
        assert!(!refs.unconfirmed(&key("svc")), "already known through r1");
        refs.remove(&key("r1"));
        assert!(refs.is_referenced(&key("svc")), "r2 still references it");
        assert_eq!(refs.set(&key("r2"), vec![key("other")]), vec![key("svc")], "dropped references are returned");
        assert_eq!(refs.targets(&key("r2")), vec![key("other")]);
    }
}
