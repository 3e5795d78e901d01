//! Ephemeral pod metadata follows each ReplicaSet's role.

use super::sim::Sim;
use super::*;

#[test]
fn ephemeral_metadata_follows_each_replica_set_role() {
    let mut sim =
        Sim::new(observed(with_istio(with_ephemeral_metadata(rollout(2, vec![set_weight(50), pause(None)])))));
    let first = sim.step();
    let created = first.actions.iter().find_map(|a| match a {
        Action::CreateReplicaSet(rs) => Some(rs.clone()),
        _ => None,
    });
    let template_labels = created.unwrap().spec.unwrap().template.unwrap().metadata.unwrap().labels.unwrap();
    assert_eq!(template_labels["role"], "stable", "the first revision is stable at once");
    sim.settle();
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));
    let role =
        |sim: &Sim, hash: &str| sim.rs(hash).unwrap().injected.labels.clone().unwrap_or_default().get("role").cloned();
    assert_eq!(role(&sim, &v1).as_deref(), Some("stable"));

    sim.update_template("v2");
    sim.settle();
    assert_eq!((role(&sim, &v1).as_deref(), role(&sim, &v2).as_deref()), (Some("stable"), Some("canary")));
    sim.set_status(|s| s.pause_conditions = None);
    sim.run_for(5);
    assert_eq!(phase(&sim), "Healthy");
    assert_eq!((role(&sim, &v1), role(&sim, &v2).as_deref()), (None, Some("stable")), "old pods lose theirs");
    // The promotion changed the template, relabelled the pods, then recorded it, in that order.
    let actions: Vec<&Action> = sim.plans.iter().flat_map(|p| &p.actions).collect();
    let position = |wanted: fn(&Action) -> bool| actions.iter().rposition(|a| wanted(a)).unwrap();
    let template = position(
        |a| matches!(a, Action::SetTemplateMetadata { change, .. } if change.labels.get("role") == Some(&Some("stable".into()))),
    );
    let pods = position(
        |a| matches!(a, Action::SetPodMetadata { change, .. } if change.labels.get("role") == Some(&Some("stable".into()))),
    );
    let record = position(
        |a| matches!(a, Action::PatchReplicaSet { annotations, .. } if annotations.get(EPHEMERAL_METADATA_ANNOTATION).is_some_and(|r| r.as_deref().is_some_and(|r| r.contains("stable")))),
    );
    assert!(template < pods && pods < record, "{actions:#?}");
    let removal = actions.iter().find_map(|a| match a {
        Action::SetPodMetadata { hash, change, .. } if *hash == v2 => change.annotations.get("canary-since").cloned(),
        _ => None,
    });
    assert_eq!(removal, Some(None), "the canary's annotation is removed at promotion");
}
