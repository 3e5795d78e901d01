//! Ephemeral pod metadata (`canaryMetadata`, `stableMetadata`): labels and annotations that a
//! pod carries while it plays a role, changed in place on its ReplicaSet's template and on the
//! pods as roles change. What was injected is recorded on the ReplicaSet, so keys that are no
//! longer wanted are removed and nobody else's keys are touched.

use std::collections::BTreeMap;

use super::Action;
use super::planner::Planner;
use crate::api::{CanaryStrategy, EPHEMERAL_METADATA_ANNOTATION, PodMetadata};

/// The role of a ReplicaSet's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Stable,
    Canary,
    /// An old revision: no ephemeral metadata.
    Other,
}

/// Labels and annotations to set (`Some`) or remove (`None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetadataChange {
    pub labels: BTreeMap<String, Option<String>>,
    pub annotations: BTreeMap<String, Option<String>>,
}

impl MetadataChange {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// What pods of `role` carry, per the strategy.
pub fn desired(canary: &CanaryStrategy, role: Role) -> PodMetadata {
    let metadata = match role {
        Role::Stable => canary.stable_metadata.as_ref(),
        Role::Canary => canary.canary_metadata.as_ref(),
        Role::Other => None,
    };
    let non_empty = |map: Option<&BTreeMap<String, String>>| map.filter(|m| !m.is_empty()).cloned();
    PodMetadata {
        labels: non_empty(metadata.and_then(|m| m.labels.as_ref())),
        annotations: non_empty(metadata.and_then(|m| m.annotations.as_ref())),
    }
}

/// The change from what was injected to what is desired: desired keys set, keys injected before
/// and no longer desired removed.
pub fn change(injected: &PodMetadata, desired: &PodMetadata) -> MetadataChange {
    let diff = |old: Option<&BTreeMap<String, String>>, new: Option<&BTreeMap<String, String>>| {
        let mut change: BTreeMap<String, Option<String>> =
            new.into_iter().flatten().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        for key in old.into_iter().flatten().map(|(k, _)| k) {
            change.entry(key.clone()).or_insert(None);
        }
        change
    };
    MetadataChange {
        labels: diff(injected.labels.as_ref(), desired.labels.as_ref()),
        annotations: diff(injected.annotations.as_ref(), desired.annotations.as_ref()),
    }
}

/// The record of what is injected, as the ReplicaSet annotation holds it (`None`: nothing).
pub fn record(metadata: &PodMetadata) -> Option<String> {
    (metadata.labels.is_some() || metadata.annotations.is_some())
        .then(|| serde_json::to_string(metadata).unwrap_or_default())
}

/// The record read back; an unreadable one counts as nothing injected.
pub fn parse_record(text: &str) -> PodMetadata {
    serde_json::from_str(text).unwrap_or_default()
}

impl<'a> Planner<'a> {
    /// The role of the pods of `hash`: the current template's are stable once promoted (or on
    /// the first deploy), canary until then, even while a deleted stable is being recreated; the
    /// stable's are stable; others have none.
    pub(super) fn role(&self, hash: &str) -> Role {
        if hash == self.hash {
            if self.stable_hash().is_none_or(|stable| stable == hash) { Role::Stable } else { Role::Canary }
        } else if self.stable_hash() == Some(hash) {
            Role::Stable
        } else {
            Role::Other
        }
    }

    /// Ephemeral metadata follows each ReplicaSet's role: template first (so new pods have it),
    /// then the pods, then the record, so a crash in between repeats the whole change.
    pub(super) fn ephemeral_metadata(&mut self) {
        for rs in self.observed.replica_sets.iter().filter(|rs| rs.owned && !rs.deleting) {
            let desired = desired(self.valid.canary, self.role(&rs.hash));
            if rs.injected == desired {
                continue;
            }
            let change = change(&rs.injected, &desired);
            let replica_set = rs.name.clone();
            self.actions.push(Action::SetTemplateMetadata { replica_set: replica_set.clone(), change: change.clone() });
            if rs.spec_replicas > 0 || rs.status_replicas > 0 {
                self.actions.push(Action::SetPodMetadata {
                    replica_set: replica_set.clone(),
                    hash: rs.hash.clone(),
                    change,
                });
            }
            let record = BTreeMap::from([(EPHEMERAL_METADATA_ANNOTATION.to_string(), record(&desired))]);
            self.actions.push(Action::PatchReplicaSet { name: replica_set, replicas: None, annotations: record });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PodMetadata {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        PodMetadata { labels: map(labels), annotations: map(annotations) }
    }

    #[test]
    fn roles_get_their_metadata_and_old_revisions_none() {
        let canary = CanaryStrategy {
            stable_metadata: Some(metadata(&[("role", "stable")], &[])),
            canary_metadata: Some(metadata(&[("role", "canary")], &[("team", "web")])),
            ..Default::default()
        };
        assert_eq!(desired(&canary, Role::Stable), metadata(&[("role", "stable")], &[]));
        assert_eq!(desired(&canary, Role::Canary), metadata(&[("role", "canary")], &[("team", "web")]));
        assert_eq!(desired(&canary, Role::Other), PodMetadata::default());
    }

    #[test]
    fn a_role_change_sets_the_new_keys_and_removes_only_those_injected_before() {
        let was = metadata(&[("role", "canary"), ("canary", "yes")], &[("team", "web")]);
        let now = metadata(&[("role", "stable")], &[]);
        let change = change(&was, &now);
        assert_eq!(
            change.labels,
            BTreeMap::from([("canary".to_string(), None), ("role".to_string(), Some("stable".to_string()))])
        );
        assert_eq!(change.annotations, BTreeMap::from([("team".to_string(), None)]));
        assert!(super::change(&now, &now).labels.values().all(Option::is_some), "nothing removed when nothing changes");
    }

    #[test]
    fn the_record_reads_back_what_it_wrote() {
        let injected = metadata(&[("role", "canary")], &[("a", "b")]);
        assert_eq!(parse_record(&record(&injected).unwrap()), injected);
        assert_eq!(record(&PodMetadata::default()), None);
        assert_eq!(parse_record("not json"), PodMetadata::default());
    }
}
