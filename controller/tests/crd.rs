//! The committed CRDs are generated from the Rust types; this catches an edit of one without the other.

use rollouts_controller::api::{CRD_FILES, crd_yaml};

#[test]
fn committed_crds_match_the_types() {
    for name in CRD_FILES {
        let path = format!("{}/../crds/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            Some(committed) == crd_yaml(name),
            "crds/{name}.yaml is stale: regenerate it with `make crds` and commit the result"
        );
    }
}

#[test]
fn crd_fits_client_side_apply() {
    // kubectl apply (client side) stores the object in an annotation limited to 256 KiB; we aim
    // far lower so it stays easy to read and apply.
    let size = crd_yaml("rollout").unwrap_or_default().len();
    assert!(size < 64 * 1024, "the CRD is {size} bytes; keep it under 64 KiB");
}
