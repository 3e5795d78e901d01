//! Names for pod templates and step lists: the `rollouts-pod-template-hash` label and
//! `status.currentStepHash`.
//!
//! Like upstream: FNV-1a (32 bit) over the JSON of the object, plus the collision count, printed
//! as decimal digits mapped onto a consonant alphabet so the label never spells words. The bytes
//! hashed are serde's JSON, not Go's, so hashes differ from Argo's; only the format matches.
//!
//! A pod template is hashed as the apiserver stores it: with its defaults filled in, and without
//! the ephemeral labels and annotations this controller adds. A template read back from a
//! ReplicaSet (what `undo` copies) then hashes like the template the ReplicaSet was made from.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;

use super::defaults::with_defaults;
use crate::api::{CanaryStep, POD_TEMPLATE_HASH_LABEL, PodMetadata};

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv1a(state: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(state, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(FNV_PRIME))
}

fn json_hash<T: Serialize>(value: &T, collision_count: Option<i32>) -> u32 {
    // Serialising plain data to JSON can't fail; an empty buffer would still hash deterministically.
    let json = serde_json::to_vec(value).unwrap_or_default();
    let hash = fnv1a(FNV_OFFSET, &json);
    match collision_count {
        Some(count) => fnv1a(hash, &u64::from(count as u32).to_le_bytes()),
        None => hash,
    }
}

fn encode(hash: u32) -> String {
    hash.to_string().bytes().map(|digit| char::from(ALPHABET[usize::from(digit) % ALPHABET.len()])).collect()
}

/// The pod-template hash: the suffix of the ReplicaSet name and the value of its hash label.
/// `ephemeral` is the metadata the roles add to pods (canaryMetadata, stableMetadata).
pub fn pod_template_hash(
    template: &PodTemplateSpec,
    ephemeral: &[&PodMetadata],
    collision_count: Option<i32>,
) -> String {
    encode(json_hash(&as_stored(template, ephemeral), collision_count))
}

/// The hash of the template as written, which earlier versions of this controller used: their
/// ReplicaSets carry it, and stay the current revision's while the template is unchanged.
pub fn legacy_pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    encode(json_hash(template, collision_count))
}

/// `template` as a ReplicaSet stores it, less what this controller adds to it.
fn as_stored(template: &PodTemplateSpec, ephemeral: &[&PodMetadata]) -> PodTemplateSpec {
    let mut stored = with_defaults(template);
    if let Some(metadata) = stored.metadata.as_mut() {
        let added =
            |key: &String,
             value: &String,
             pick: fn(&PodMetadata) -> Option<&std::collections::BTreeMap<String, String>>| {
                ephemeral.iter().any(|m| pick(m).and_then(|map| map.get(key)) == Some(value))
            };
        if let Some(labels) = metadata.labels.as_mut() {
            labels.retain(|k, v| k != POD_TEMPLATE_HASH_LABEL && !added(k, v, |m| m.labels.as_ref()));
        }
        if let Some(annotations) = metadata.annotations.as_mut() {
            annotations.retain(|k, v| !added(k, v, |m| m.annotations.as_ref()));
        }
        for map in [&mut metadata.labels, &mut metadata.annotations] {
            if map.as_ref().is_some_and(|m| m.is_empty()) {
                *map = None;
            }
        }
    }
    stored
}

/// The hash of the canary steps, so that an edit of the steps restarts them.
pub fn step_hash(steps: &[CanaryStep]) -> String {
    encode(json_hash(&steps, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CanaryStep;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn same_template_same_hash_and_changes_change_it() {
        let hash = |image, collisions| pod_template_hash(&template(image), &[], collisions);
        assert_eq!(hash("a", None), hash("a", None));
        assert_ne!(hash("a", None), hash("b", None));
        assert_ne!(hash("a", None), hash("a", Some(1)));
    }

    #[test]
    fn a_template_read_back_from_its_replica_set_hashes_the_same() {
        let written = template("nginx:1.27");
        let role = PodMetadata { labels: Some([("role".to_string(), "stable".to_string())].into()), annotations: None };
        // What undo copies: defaulted by the apiserver, with the role's label and the hash label.
        let mut read_back = with_defaults(&written);
        let labels = read_back.metadata.as_mut().unwrap().labels.as_mut().unwrap();
        labels.insert("role".into(), "stable".into());
        labels.insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert_eq!(pod_template_hash(&read_back, &[&role], None), pod_template_hash(&written, &[&role], None));
        assert_ne!(legacy_pod_template_hash(&read_back, None), legacy_pod_template_hash(&written, None));
    }

    #[test]
    fn hash_is_a_valid_label_value_from_the_alphabet() {
        let hash = pod_template_hash(&template("nginx:1.27"), &[], Some(3));
        assert!(!hash.is_empty() && hash.len() <= 10, "{hash}");
        assert!(hash.bytes().all(|b| ALPHABET.contains(&b)), "{hash}");
    }

    #[test]
    fn step_hash_follows_the_steps() {
        let a = vec![CanaryStep { set_weight: Some(10), ..Default::default() }];
        let b = vec![CanaryStep { set_weight: Some(20), ..Default::default() }];
        assert_eq!(step_hash(&a), step_hash(&a.clone()));
        assert_ne!(step_hash(&a), step_hash(&b));
    }
}
