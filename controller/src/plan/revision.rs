//! Revisions: a new template or new steps start the steps again, the first revision is stable at
//! once, abort and retry, full promotion, and the Rollout's revision and workload-generation
//! annotations.

use std::collections::BTreeMap;

use super::conditions as cond;
use super::planner::Planner;
use super::reasons;
use super::{Action, Event};
use crate::api::{REVISION_ANNOTATION, WORKLOAD_GENERATION_ANNOTATION};

impl<'a> Planner<'a> {
    /// The revision of the current template: its ReplicaSet's, unless an older revision is re-used
    /// (a rollback), which makes it the newest.
    pub(super) fn revision(&self) -> u64 {
        let newest = self.max_other_revision() + 1;
        self.new_rs.and_then(|rs| rs.revision).filter(|r| *r >= newest).unwrap_or(newest)
    }

    pub(super) fn max_other_revision(&self) -> u64 {
        self.observed
            .replica_sets
            .iter()
            .filter(|rs| rs.hash != self.hash)
            .filter_map(|rs| rs.revision)
            .max()
            .unwrap_or(0)
    }

    pub(super) fn adopt_orphans(&mut self) {
        for rs in self.observed.replica_sets.iter().filter(|rs| !rs.owned && !rs.deleting) {
            self.actions.push(Action::AdoptReplicaSet { name: rs.name.clone() });
        }
    }

    /// A new template or new steps start the steps again (a template back at stable skips them).
    pub(super) fn reset_on_change(&mut self) {
        let template_changed = self.before.current_pod_hash.as_deref() != Some(self.hash.as_str());
        let steps_changed = self.before.current_step_hash.as_deref() != Some(self.step_hash.as_str());
        if !template_changed && !steps_changed {
            return;
        }
        self.clear_pause();
        let next = &mut self.next;
        next.current_pod_hash = Some(self.hash.clone());
        next.current_step_hash = Some(self.step_hash.clone());
        next.current_step_index = (!self.valid.steps.is_empty()).then_some(0);
        next.promote_full = None;
        if next.abort.is_some() {
            next.abort = None;
        }
        next.aborted_at = None;
        let back_to_stable = self.before.stable_rs.as_deref() == Some(self.hash.as_str());
        if back_to_stable && !self.valid.steps.is_empty() {
            self.next.current_step_index = Some(self.steps_len());
            if template_changed {
                self.event(reasons::SKIP_STEPS, "Rollback to stable ReplicaSets".into());
            }
        }
        if template_changed && self.before.stable_rs.is_some() && !back_to_stable {
            let revision = self.max_other_revision() + 1;
            self.event(
                reasons::ROLLOUT_NOT_COMPLETED,
                format!("Rollout not completed, started update to revision {revision} ({})", self.hash),
            );
        }
    }

    /// The first revision becomes stable at once: there is nothing to compare it with.
    pub(super) fn initial_deploy(&mut self) {
        if self.next.stable_rs.is_some() {
            return;
        }
        self.next.stable_rs = Some(self.hash.clone());
        self.next.current_step_index = self.past_the_steps();
        self.clear_pause();
        let message =
            format!("Rollout completed update to revision {} ({}): Initial deploy", self.revision(), self.hash);
        self.event(reasons::ROLLOUT_COMPLETED, message);
    }

    pub(super) fn abort_and_retry(&mut self) {
        if self.aborted() && self.next.promote_full == Some(true) {
            // `promote --full` overrides an abort, as upstream: the update goes ahead in full.
            self.next.abort = None;
        }
        if self.aborted() && self.promoted() {
            // Nothing in flight to abort: the new revision is stable already (its Service switch
            // may be settling). Going back is an undo, not an abort.
            self.next.abort = None;
            let message = format!(
                "abort ignored: revision {} ({}) is already stable; use undo to go back",
                self.revision(),
                self.hash
            );
            self.notice = Some(message.clone());
            self.events.push(Event { warning: true, reason: reasons::ROLLOUT_ABORT_IGNORED, message });
        }
        if self.aborted() {
            self.begin_abort(None);
        } else if self.next.aborted_at.is_some() {
            self.next.aborted_at = None;
            let message = "Retrying Rollout after abort";
            cond::set(
                &mut self.conditions,
                cond::PROGRESSING,
                cond::Status::Unknown,
                reasons::ROLLOUT_RETRY,
                message,
                self.now,
            );
        }
    }

    /// Aborts the update (steps back to the start, pauses lifted), saying why when the controller
    /// decided it (an analysis run's verdict) rather than a person.
    pub(super) fn begin_abort(&mut self, reason: Option<&str>) {
        self.next.abort = Some(true);
        if !self.valid.steps.is_empty() {
            self.next.current_step_index = Some(0);
        }
        self.clear_pause();
        self.next.promote_full = None;
        if self.next.aborted_at.is_some() {
            return;
        }
        self.next.aborted_at = Some(self.stamp());
        let message = match reason {
            None => self.aborted_message(),
            Some(reason) => {
                let message = format!("{}: {reason}", self.aborted_message());
                let status = cond::Status::False;
                cond::set(
                    &mut self.conditions,
                    cond::PROGRESSING,
                    status,
                    reasons::ROLLOUT_ABORTED,
                    &message,
                    self.now,
                );
                message
            }
        };
        self.events.push(Event { warning: true, reason: reasons::ROLLOUT_ABORTED, message });
    }

    pub(super) fn full_promotion(&mut self) {
        if self.next.promote_full != Some(true) {
            return;
        }
        if self.promoted() {
            self.next.promote_full = None;
            return;
        }
        self.next.current_step_index = self.past_the_steps();
        self.clear_pause();
    }

    /// The Rollout's revision follows its current ReplicaSet, and its workload-generation
    /// annotation the referenced workload, as upstream writes them (Argo CD's health check waits
    /// for status.workloadObservedGeneration to reach that annotation).
    pub(super) fn annotate_rollout(&mut self) {
        let has_revision = self.new_rs.is_some() || self.created_rs;
        let desired = [
            (REVISION_ANNOTATION, has_revision.then(|| self.revision().to_string())),
            (
                WORKLOAD_GENERATION_ANNOTATION,
                self.observed.workload.as_ref().and_then(|w| w.generation).map(|g| g.to_string()),
            ),
        ];
        let current = self.observed.rollout.metadata.annotations.as_ref();
        let annotations: BTreeMap<String, Option<String>> = desired
            .into_iter()
            .filter(|(key, value)| current.and_then(|a| a.get(*key)) != value.as_ref())
            .filter(|(key, value)| value.is_some() || *key == WORKLOAD_GENERATION_ANNOTATION)
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        if !annotations.is_empty() {
            self.actions.push(Action::AnnotateRollout { annotations });
        }
    }
}
