//! The Rollout API (argoproj.io/v1alpha1): types, well-known names and the generated CRD. No I/O.

mod analysis;
mod analysis_status;
mod crd;
mod duration;
mod placeholders;
mod rollout_analysis;
mod routers;
mod schema;
mod spec;
mod status;

pub use analysis::*;
pub use analysis_status::*;
pub use crd::{CRD_FILES, crd, crd_yaml};
pub use duration::parse_go_duration;
pub use placeholders::Experiment;
pub use rollout_analysis::*;
pub use routers::*;
pub use spec::*;
pub use status::*;

/// Label on ReplicaSets, pods and Service selectors that names a pod template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Revision number on the Rollout and its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "rollout.argoproj.io/revision";
/// Revisions a ReplicaSet had before it was re-used by a rollback.
pub const REVISION_HISTORY_ANNOTATION: &str = "rollout.argoproj.io/revision-history";
/// spec.replicas of the Rollout when the ReplicaSet was last sized; a mismatch is a scaling event.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "rollout.argoproj.io/desired-replicas";
/// When an old ReplicaSet that still had traffic may be scaled to zero.
pub const SCALE_DOWN_DEADLINE_ANNOTATION: &str = "scale-down-deadline";
/// The Rollout that manages a Service's selector.
pub const MANAGED_BY_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
/// metadata.generation of the referenced workload, written on the Rollout.
pub const WORKLOAD_GENERATION_ANNOTATION: &str = "rollout.argoproj.io/workload-generation";
/// The ephemeral pod metadata (canaryMetadata/stableMetadata) injected into a ReplicaSet's
/// template and pods, as JSON: `{"labels": {...}, "annotations": {...}}`.
pub const EPHEMERAL_METADATA_ANNOTATION: &str = "rollout.argoproj.io/ephemeral-metadata";
/// Shards controllers like upstream's --instance-id.
pub const INSTANCE_ID_LABEL: &str = "argo-rollouts.argoproj.io/instance-id";
/// When this controller last moved traffic through the object it is on (a VirtualService's
/// weights, a Service's selector): written with the change itself, so a controller that restarts
/// right after a change still waits out the settle gap that follows it.
pub const TRAFFIC_CHANGED_ANNOTATION: &str = "rollouts.argoproj.io/traffic-changed-at";
/// Finalizer that restores the workload and Services before a Rollout's pods go away.
pub const FINALIZER: &str = "rollouts.argoproj.io/cleanup";
/// `spec.progressDeadlineSeconds` when unset.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Field manager for every write of this controller.
pub const FIELD_MANAGER: &str = "rollouts-controller";
