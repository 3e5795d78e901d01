//! Objects as this controller last wrote them, kept until the watch cache catches up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Resource;

use crate::cache::{Key, key_of};

/// Objects as this controller last wrote them, until the cache catches up: a reconcile woken
/// before our own write reaches the cache must act on what we wrote, not on the older copy.
pub struct WrittenCopies<K> {
    copies: Mutex<HashMap<Key, Arc<K>>>,
}

impl<K> Default for WrittenCopies<K> {
    fn default() -> Self {
        WrittenCopies { copies: Mutex::default() }
    }
}

fn version<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_ref().and_then(|v| v.parse().ok())
}

impl<K: Resource + Clone> WrittenCopies<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Arc<K>>> {
        self.copies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newer of `cached` and our copy of the same object.
    pub fn freshest(&self, cached: &K) -> K {
        let key = key_of(cached);
        let mut copies = self.lock();
        match copies.get(&key) {
            Some(ours) if ours.meta().uid == cached.meta().uid && version(&**ours) > version(cached) => {
                (**ours).clone()
            }
            Some(_) => {
                copies.remove(&key);
                cached.clone()
            }
            None => cached.clone(),
        }
    }

    /// The cache has `cached`: forget our copy if it is no newer.
    pub fn caught_up(&self, cached: &K) {
        let key = key_of(cached);
        let mut copies = self.lock();
        if copies.get(&key).is_some_and(|ours| version(&**ours) <= version(cached)) {
            copies.remove(&key);
        }
    }

    pub fn remember(&self, written: K) {
        self.lock().insert(key_of(&written), Arc::new(written));
    }

    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn object(uid: &str, version: &str) -> ConfigMap {
        let metadata = ObjectMeta {
            name: Some("o".into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            resource_version: Some(version.into()),
            ..Default::default()
        };
        ConfigMap { metadata, ..Default::default() }
    }

    #[test]
    fn our_copy_wins_only_while_it_is_newer_than_the_cache() {
        let written = WrittenCopies::default();
        written.remember(object("a", "5"));
        assert_eq!(written.freshest(&object("a", "4")).metadata.resource_version.as_deref(), Some("5"));
        // Another object of the same name (recreated): the cache's.
        assert_eq!(written.freshest(&object("b", "4")).metadata.uid.as_deref(), Some("b"));
        written.remember(object("a", "5"));
        written.caught_up(&object("a", "5"));
        assert_eq!(written.freshest(&object("a", "3")).metadata.resource_version.as_deref(), Some("3"), "forgotten");
        written.remember(object("a", "7"));
        written.forget(&("ns".into(), "o".into()));
        assert_eq!(written.freshest(&object("a", "6")).metadata.resource_version.as_deref(), Some("6"));
    }
}
