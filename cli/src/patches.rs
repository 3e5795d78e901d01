//! The exact requests of each operation, as values built by pure functions: the same bodies the
//! Argo plugin sends (its `pkg/kubectl-argo-rollouts/cmd`), so either plugin can drive either
//! controller.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use rollouts_controller::api::{AnalysisPhase, POD_TEMPLATE_HASH_LABEL, Rollout};
use serde_json::{Value, json};

use crate::family::{revision_of, template_hash};

/// Merge patches for a promotion: the status one is sent first, then the spec one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Promotion {
    pub status: Option<Value>,
    pub spec: Option<Value>,
}

fn unpause_if_paused(rollout: &Rollout) -> Option<Value> {
    (rollout.spec.paused == Some(true)).then(|| json!({"spec": {"paused": false}}))
}

/// `promote`: end the current pause, or else skip the current step; and lift a manual pause.
/// A pause for an Inconclusive step analysis ends by skipping that step.
pub fn promote(rollout: &Rollout) -> Promotion {
    let status = rollout.status.clone().unwrap_or_default();
    let steps = rollout.spec.strategy.canary.as_ref().and_then(|c| c.steps.as_ref()).map_or(0, Vec::len);
    let total = i32::try_from(steps).unwrap_or(i32::MAX);
    let next = status.current_step_index.unwrap_or(0).saturating_add(1).min(total);
    let paused = status.pause_conditions.as_ref().is_some_and(|p| !p.is_empty());
    let step_run = status.canary.as_ref().and_then(|c| c.current_step_analysis_run_status.as_ref());
    let inconclusive = step_run.is_some_and(|run| run.status == AnalysisPhase::Inconclusive.as_str());
    let status_patch = if inconclusive && paused && status.controller_pause == Some(true) {
        Some(json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": next}}))
    } else if paused {
        Some(json!({"status": {"pauseConditions": null}}))
    } else if steps > 0 {
        Some(json!({"status": {"pauseConditions": null, "currentStepIndex": next}}))
    } else {
        None
    };
    Promotion { status: status_patch, spec: unpause_if_paused(rollout) }
}

/// `promote --full`: skip every remaining step.
pub fn promote_full(rollout: &Rollout) -> Promotion {
    let status = rollout.status.clone().unwrap_or_default();
    let promoted = status.current_pod_hash == status.stable_rs;
    Promotion {
        status: (!promoted).then(|| json!({"status": {"promoteFull": true}})),
        spec: unpause_if_paused(rollout),
    }
}

pub fn pause() -> Value {
    json!({"spec": {"paused": true}})
}

pub fn resume() -> Value {
    json!({"spec": {"paused": false}})
}

pub fn abort() -> Value {
    json!({"status": {"abort": true}})
}

pub fn retry() -> Value {
    json!({"status": {"abort": false}})
}

/// `terminate analysisrun`: the run takes no more measurements and ends.
pub fn terminate() -> Value {
    json!({"spec": {"terminate": true}})
}

/// `restart`: pods created before `now + delay` (whole seconds, UTC) are replaced.
pub fn restart(now: Timestamp, delay_seconds: u64) -> Result<Value> {
    let delay = i64::try_from(delay_seconds).context("the restart delay is too long")?;
    let at = Timestamp::from_second(now.as_second().saturating_add(delay)).context("the restart delay is too long")?;
    Ok(json!({"spec": {"restartAt": at.to_string()}}))
}

/// Sets `image` on the container named `container` (`*`: every container) of a pod spec in JSON,
/// init and ephemeral containers included.
pub fn set_image(pod_spec: &mut Value, container: &str, image: &str) -> Result<()> {
    let mut found = false;
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(containers) = pod_spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for entry in containers {
            if container == "*" || entry.get("name").and_then(Value::as_str) == Some(container) {
                entry["image"] = json!(image);
                found = true;
            }
        }
    }
    if !found {
        bail!("unable to find container named \"{container}\"");
    }
    Ok(())
}

/// The ReplicaSet `undo` goes back to: revision `to_revision`, or the one before the newest (0).
pub fn rollback_target<'a>(
    name: &str,
    replica_sets: &'a [ReplicaSet],
    to_revision: u64,
) -> Result<(u64, &'a ReplicaSet)> {
    let mut revisions: Vec<(u64, &ReplicaSet)> =
        replica_sets.iter().filter_map(|rs| revision_of(rs).map(|revision| (revision, rs))).collect();
    revisions.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    if to_revision == 0 {
        return match revisions.get(1) {
            Some(previous) => Ok(*previous),
            None => bail!("rollout \"{name}\" has no previous revision to roll back to"),
        };
    }
    match revisions.iter().find(|(revision, _)| *revision == to_revision) {
        Some(found) => Ok(*found),
        None => {
            let known: Vec<String> = revisions.iter().rev().map(|(revision, _)| revision.to_string()).collect();
            bail!("revision {to_revision} of rollout \"{name}\" not found (revisions: {})", known.join(", "))
        }
    }
}

/// The pod template of a ReplicaSet, without the label the controller adds to it.
pub fn template_of(rs: &ReplicaSet) -> Result<Value> {
    let template = rs.spec.as_ref().and_then(|s| s.template.as_ref()).context("the ReplicaSet has no pod template")?;
    let mut template = serde_json::to_value(template)?;
    if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    Ok(template)
}

/// Whether the rollout already runs `target`: same template, or the controller already named
/// the current template after the target's hash.
pub fn already_at(
    rollout: &Rollout,
    current_template: Option<&Value>,
    target: &ReplicaSet,
    target_template: &Value,
) -> bool {
    let current_hash = rollout.status.as_ref().and_then(|s| s.current_pod_hash.as_deref());
    current_template == Some(target_template) || (current_hash.is_some() && template_hash(target) == current_hash)
}

/// `undo`'s JSON Patch of the Rollout (or of the workload it references).
pub fn rollback(template: Value) -> Value {
    json!([{"op": "replace", "path": "/spec/template", "value": template}])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Rollout from YAML, as a test fixture.
    fn rollout(yaml: &str) -> Rollout {
        serde_saphyr::from_str(yaml).expect("fixture parses")
    }

    const AT_PAUSE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  strategy: {canary: {steps: [{setWeight: 25}, {pause: {}}, {setWeight: 50}]}}
status:
  currentStepIndex: 1
  currentPodHash: new
  stableRS: old
  controllerPause: true
  pauseConditions: [{reason: CanaryPauseStep, startTime: "2026-01-01T00:00:00Z"}]
"#;

    #[test]
    fn promote_at_a_pause_clears_the_pause_conditions() {
        let promotion = promote(&rollout(AT_PAUSE));
        assert_eq!(promotion.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(promotion.spec, None);
    }

    #[test]
    fn promote_without_a_pause_skips_the_current_step() {
        let mut ro = rollout(AT_PAUSE);
        let status = ro.status.as_mut().expect("fixture has a status");
        status.pause_conditions = None;
        status.current_step_index = Some(2);
        let promotion = promote(&ro);
        assert_eq!(promotion.status, Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 3}})));
        // Past the last step it stays at the end.
        ro.status.as_mut().expect("fixture has a status").current_step_index = Some(3);
        assert_eq!(promote(&ro).status, Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 3}})));
    }

    const INCONCLUSIVE_AT_ANALYSIS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  strategy:
    canary:
      steps: [{setWeight: 25}, {analysis: {templates: [{templateName: success-rate}]}}]
status:
  currentStepIndex: 1
  currentPodHash: new
  stableRS: old
  controllerPause: true
  pauseConditions: [{reason: InconclusiveAnalysisRun, startTime: "2026-01-01T00:00:00Z"}]
  canary:
    currentStepAnalysisRunStatus: {name: web-new-2-1, status: Inconclusive}
"#;

    #[test]
    fn promote_past_an_inconclusive_step_analysis_skips_the_step() {
        let mut ro = rollout(INCONCLUSIVE_AT_ANALYSIS);
        let skip = json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}});
        assert_eq!(promote(&ro).status, Some(skip.clone()));
        // Already past the last step: the index stays at the end.
        ro.status.as_mut().expect("fixture has a status").current_step_index = Some(2);
        assert_eq!(promote(&ro).status, Some(skip));
    }

    #[test]
    fn an_inconclusive_step_analysis_alone_does_not_skip_the_step() {
        let clear = Some(json!({"status": {"pauseConditions": null}}));
        let mut ro = rollout(INCONCLUSIVE_AT_ANALYSIS);
        ro.status.as_mut().expect("fixture has a status").controller_pause = None;
        assert_eq!(promote(&ro).status, clear, "not paused by the controller");
        let mut ro = rollout(INCONCLUSIVE_AT_ANALYSIS);
        let canary = ro.status.as_mut().and_then(|s| s.canary.as_mut()).expect("fixture has a canary status");
        let step_run = canary.current_step_analysis_run_status.take().expect("fixture has a step run");
        canary.current_background_analysis_run_status = Some(step_run);
        assert_eq!(promote(&ro).status, clear, "only the background run is inconclusive");
        let mut ro = rollout(INCONCLUSIVE_AT_ANALYSIS);
        ro.status.as_mut().expect("fixture has a status").pause_conditions = Some(vec![]);
        let skip = json!({"status": {"pauseConditions": null, "currentStepIndex": 2}});
        assert_eq!(promote(&ro).status, Some(skip), "no pause condition: the plain step skip");
    }

    #[test]
    fn promote_lifts_a_manual_pause_after_the_status_patch() {
        let mut ro = rollout(AT_PAUSE);
        ro.spec.paused = Some(true);
        let promotion = promote(&ro);
        assert_eq!(promotion.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(promotion.spec, Some(json!({"spec": {"paused": false}})));
        ro.spec.strategy.canary = None;
        ro.status = None;
        assert_eq!(promote(&ro), Promotion { status: None, spec: Some(json!({"spec": {"paused": false}})) });
    }

    #[test]
    fn promote_full_sets_promote_full_unless_already_promoted() {
        let mut ro = rollout(AT_PAUSE);
        ro.spec.paused = Some(true);
        let promotion = promote_full(&ro);
        assert_eq!(promotion.status, Some(json!({"status": {"promoteFull": true}})));
        assert_eq!(promotion.spec, Some(json!({"spec": {"paused": false}})));
        let status = ro.status.as_mut().expect("fixture has a status");
        status.stable_rs = status.current_pod_hash.clone();
        ro.spec.paused = None;
        assert_eq!(promote_full(&ro), Promotion::default());
    }

    #[test]
    fn simple_operations_send_argo_s_bodies() {
        assert_eq!(pause(), json!({"spec": {"paused": true}}));
        assert_eq!(resume(), json!({"spec": {"paused": false}}));
        assert_eq!(abort(), json!({"status": {"abort": true}}));
        assert_eq!(retry(), json!({"status": {"abort": false}}));
        assert_eq!(terminate(), json!({"spec": {"terminate": true}}));
    }

    #[test]
    fn restart_is_now_plus_the_delay_in_whole_seconds() {
        let now: Timestamp = "2026-03-04T05:06:07.890Z".parse().expect("valid time");
        assert_eq!(restart(now, 0).ok(), Some(json!({"spec": {"restartAt": "2026-03-04T05:06:07Z"}})));
        assert_eq!(restart(now, 90).ok(), Some(json!({"spec": {"restartAt": "2026-03-04T05:07:37Z"}})));
        assert!(restart(now, u64::MAX).is_err());
    }

    fn pod_spec() -> Value {
        json!({
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [{"name": "web", "image": "nginx:1.26"}, {"name": "sidecar", "image": "envoy:1"}]
        })
    }

    #[test]
    fn set_image_changes_the_named_container_or_all() {
        let mut spec = pod_spec();
        set_image(&mut spec, "web", "nginx:1.27").expect("web exists");
        assert_eq!(spec["containers"][0]["image"], "nginx:1.27");
        assert_eq!(spec["containers"][1]["image"], "envoy:1");
        set_image(&mut spec, "init", "busybox:2").expect("init containers count");
        assert_eq!(spec["initContainers"][0]["image"], "busybox:2");
        let mut spec = pod_spec();
        set_image(&mut spec, "*", "all:1").expect("there are containers");
        assert_eq!(spec["initContainers"][0]["image"], "all:1");
        assert_eq!(spec["containers"][1]["image"], "all:1");
        let error = set_image(&mut pod_spec(), "db", "postgres:17").expect_err("no such container");
        assert_eq!(error.to_string(), "unable to find container named \"db\"");
    }

    fn replica_set(hash: &str, revision: u64, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("web-{hash}"),
                "labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash},
                "annotations": {"rollout.argoproj.io/revision": revision.to_string()}
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash}},
                "template": {
                    "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash}},
                    "spec": {"containers": [{"name": "web", "image": image}]}
                }
            }
        }))
        .expect("fixture parses")
    }

    #[test]
    fn undo_goes_to_the_previous_revision_or_the_one_asked_for() {
        let history = [
            replica_set("aaa", 1, "nginx:1.25"),
            replica_set("ccc", 3, "nginx:1.27"),
            replica_set("bbb", 2, "nginx:1.26"),
        ];
        let (revision, rs) = rollback_target("web", &history, 0).expect("there is a previous revision");
        assert_eq!((revision, template_hash(rs)), (2, Some("bbb")));
        let (revision, rs) = rollback_target("web", &history, 1).expect("revision 1 exists");
        assert_eq!((revision, template_hash(rs)), (1, Some("aaa")));
        let missing = rollback_target("web", &history, 7).expect_err("no revision 7");
        assert_eq!(missing.to_string(), "revision 7 of rollout \"web\" not found (revisions: 1, 2, 3)");
        let alone = rollback_target("web", &history[..1], 0).expect_err("nothing before revision 1");
        assert_eq!(alone.to_string(), "rollout \"web\" has no previous revision to roll back to");
    }

    #[test]
    fn undo_patches_the_template_without_the_hash_label() {
        let rs = replica_set("bbb", 2, "nginx:1.26");
        let template = template_of(&rs).expect("has a template");
        let expected_template = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}
        });
        assert_eq!(template, expected_template);
        assert_eq!(
            rollback(template.clone()),
            json!([{"op": "replace", "path": "/spec/template", "value": expected_template}])
        );
        let ro = rollout(AT_PAUSE);
        assert!(already_at(&ro, Some(&template), &rs, &template), "same template");
        assert!(!already_at(&ro, None, &rs, &template), "different template, different hash");
        assert!(already_at(&ro, None, &replica_set("new", 2, "nginx:1.26"), &template), "current hash");
    }
}
