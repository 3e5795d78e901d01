//! The committed CRD is generated from the Rust types; this catches an edit of one without the other.

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/rollout.yaml");
    let committed = std::fs::read_to_string(path).expect("crds/rollout.yaml exists");
    assert!(
        committed == rollouts_controller::api::crd_yaml(),
        "crds/rollout.yaml is stale: regenerate it with `make crds` and commit the result"
    );
}

#[test]
fn crd_fits_client_side_apply() {
    // kubectl apply (client side) stores the object in an annotation limited to 256 KiB; we aim
    // far lower so it stays easy to read and apply.
    let size = rollouts_controller::api::crd_yaml().len();
    assert!(size < 64 * 1024, "the CRD is {size} bytes; keep it under 64 KiB");
}
