//! The status: replica counts, conditions, phase and message.

use super::conditions as cond;
use super::planner::Planner;
use super::reasons;
use super::step_list;
use super::{Action, Event, ReplicaSetView, generation, later, seconds};
use crate::api::{CanaryStatus, DEFAULT_PROGRESS_DEADLINE_SECONDS, Phase};

impl<'a> Planner<'a> {
    pub(super) fn write_status(&mut self) {
        let rs_list = &self.observed.replica_sets;
        let sum = |f: fn(&ReplicaSetView) -> i32| rs_list.iter().filter(|rs| rs.owned).map(f).sum::<i32>();
        let routed = self.routed();
        let next = &mut self.next;
        next.replicas = Some(sum(|rs| rs.status_replicas));
        next.updated_replicas = Some(self.new_rs.map_or(0, |rs| rs.status_replicas));
        next.ready_replicas = Some(sum(|rs| rs.ready));
        next.available_replicas = Some(sum(|rs| rs.available));
        next.hpa_replicas = next.replicas;
        next.selector = Some(super::format_selector(&self.valid.selector));
        next.observed_generation = generation(&self.observed.rollout);
        next.workload_observed_generation =
            self.observed.workload.as_ref().and_then(|w| w.generation).map(|g| g.to_string());
        if !routed {
            if let Some(canary) = next.canary.as_mut() {
                canary.weights = None;
                canary.traffic_changed_at = None;
            }
            if next.canary.as_ref().is_some_and(|c| *c == CanaryStatus::default()) {
                next.canary = None;
            }
        }
        self.update_conditions();
        self.update_phase();
        self.next.conditions = Some(std::mem::take(&mut self.conditions));
    }

    pub(super) fn progressed(&self) -> bool {
        let (b, n) = (&self.before, &self.next);
        self.created_rs
            || b.updated_replicas != n.updated_replicas
            || b.ready_replicas != n.ready_replicas
            || b.available_replicas != n.available_replicas
            || b.replicas != n.replicas
            || b.current_step_index != n.current_step_index
            || b.stable_rs != n.stable_rs
            || b.current_pod_hash != n.current_pod_hash
            || self.actions.iter().any(|a| !matches!(a, Action::AddFinalizer | Action::DefaultReplicas))
    }

    pub(super) fn healthy(&self) -> bool {
        let n = &self.next;
        let all_updated = n.updated_replicas == Some(self.replicas) && self.new_available() >= self.replicas;
        let old_gone = self.routed() || n.replicas == Some(self.replicas);
        let traffic_home = !self.routed() || self.weights_after_writes().iter().all(|w| *w == 0);
        self.promoted() && all_updated && old_gone && traffic_home && self.waiting.is_none() && !self.paused_by_user()
    }

    pub(super) fn update_conditions(&mut self) {
        let now = self.now;
        let new_name = self.new_rs_name();
        let total_available = self.next.available_replicas.unwrap_or(0);
        let paused = self.paused_by_user() || !self.next.pause_conditions.as_deref().unwrap_or_default().is_empty();
        let c = &mut self.conditions;
        cond::remove(c, cond::INVALID_SPEC);
        if total_available >= self.replicas {
            cond::set(
                c,
                cond::AVAILABLE,
                cond::Status::True,
                reasons::AVAILABLE,
                "Rollout has minimum availability",
                now,
            );
        } else {
            cond::set(
                c,
                cond::AVAILABLE,
                cond::Status::False,
                reasons::AVAILABLE,
                "Rollout does not have minimum availability",
                now,
            );
        }
        if paused {
            cond::set(c, cond::PAUSED, cond::Status::True, reasons::ROLLOUT_PAUSED, "Rollout is paused", now);
        } else if cond::find(c, cond::PAUSED).is_some() {
            cond::set(c, cond::PAUSED, cond::Status::False, reasons::ROLLOUT_PAUSED, "Rollout is paused", now);
        }
        let completed = self.next.stable_rs.as_deref() == Some(self.hash.as_str());
        let completed_status = cond::Status::from(completed);
        cond::set(c, cond::COMPLETED, completed_status, reasons::ROLLOUT_COMPLETED, reasons::ROLLOUT_COMPLETED, now);
        match self.new_rs.and_then(|rs| rs.failure.clone()) {
            Some((reason, message)) => cond::set(c, cond::REPLICA_FAILURE, cond::Status::True, &reason, &message, now),
            None => cond::remove(c, cond::REPLICA_FAILURE),
        }

        let healthy = self.healthy();
        let progressed = self.progressed();
        let aborted_message = self.aborted_message();
        let c = &mut self.conditions;
        if self.next.abort == Some(true) {
            // An abort keeps the message it started with (it may say why it aborted).
            if cond::find(c, cond::PROGRESSING).is_none_or(|p| p.reason != reasons::ROLLOUT_ABORTED) {
                cond::set(c, cond::PROGRESSING, cond::Status::False, reasons::ROLLOUT_ABORTED, &aborted_message, now);
            }
        } else if paused {
            cond::set(c, cond::PROGRESSING, cond::Status::Unknown, reasons::ROLLOUT_PAUSED, "Rollout is paused", now);
        } else if healthy {
            let message = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
            cond::set(c, cond::PROGRESSING, cond::Status::True, reasons::NEW_REPLICA_SET_AVAILABLE, &message, now);
        } else if self.created_rs {
            cond::touch(
                c,
                cond::PROGRESSING,
                cond::Status::True,
                reasons::NEW_REPLICA_SET_CREATED,
                &format!("Created new replica set \"{new_name}\""),
                now,
            );
        } else if progressed
            || cond::find(c, cond::PROGRESSING)
                .is_none_or(|p| p.reason == reasons::ROLLOUT_PAUSED || p.reason == reasons::NEW_REPLICA_SET_AVAILABLE)
        {
            cond::touch(
                c,
                cond::PROGRESSING,
                cond::Status::True,
                reasons::REPLICA_SET_UPDATED,
                &format!("ReplicaSet \"{new_name}\" is progressing."),
                now,
            );
        } else {
            self.check_progress_deadline(&new_name);
        }
        let c = &mut self.conditions;
        if healthy {
            cond::set(c, cond::HEALTHY, cond::Status::True, reasons::ROLLOUT_HEALTHY, "Rollout is healthy", now);
        } else if cond::find(c, cond::HEALTHY).is_some() {
            cond::set(c, cond::HEALTHY, cond::Status::False, reasons::ROLLOUT_HEALTHY, "Rollout is not healthy", now);
        }
    }

    /// No progress for progressDeadlineSeconds: ProgressDeadlineExceeded, and an abort if asked.
    pub(super) fn check_progress_deadline(&mut self, new_name: &str) {
        let Some(progressing) = cond::find(&self.conditions, cond::PROGRESSING) else {
            return;
        };
        if progressing.reason == reasons::PROGRESS_DEADLINE_EXCEEDED {
            return;
        }
        if self.promoted() && self.waiting.is_none() {
            return;
        }
        // An analysis step takes as long as its measurements: that is not a stall.
        if self.current_step().is_some_and(|s| s.analysis.is_some()) && !self.aborted() {
            return;
        }
        let deadline = later(
            progressing.last_update_time.0,
            seconds(i64::from(
                self.observed.rollout.spec.progress_deadline_seconds.unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
            )),
        );
        if self.now < deadline {
            self.requeue_at(deadline);
            return;
        }
        let message = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
        if self.observed.rollout.spec.progress_deadline_abort == Some(true) && !self.promoted() {
            let aborted = format!("{}: {message}", self.aborted_message());
            cond::set(
                &mut self.conditions,
                cond::PROGRESSING,
                cond::Status::False,
                reasons::ROLLOUT_ABORTED,
                &aborted,
                self.now,
            );
            self.next.abort = Some(true);
            self.next.aborted_at = Some(self.stamp());
            self.events.push(Event { warning: true, reason: reasons::ROLLOUT_ABORTED, message: aborted });
        } else {
            cond::set(
                &mut self.conditions,
                cond::PROGRESSING,
                cond::Status::False,
                reasons::PROGRESS_DEADLINE_EXCEEDED,
                &message,
                self.now,
            );
        }
    }

    pub(super) fn update_phase(&mut self) {
        let progressing = cond::find(&self.conditions, cond::PROGRESSING).cloned();
        let restarting = self
            .observed
            .rollout
            .spec
            .restart_at
            .as_ref()
            .map(|t| t.0)
            .is_some_and(|at| self.next.restarted_at.as_ref().map(|t| t.0) != Some(at));
        let (phase, message) = if let Some(p) = progressing
            .as_ref()
            .filter(|p| p.reason == reasons::ROLLOUT_ABORTED || p.reason == reasons::PROGRESS_DEADLINE_EXCEEDED)
        {
            let pending = self.waiting.as_deref().map(|w| format!("; {w}")).unwrap_or_default();
            (Phase::Degraded, Some(format!("{}: {}{pending}", p.reason, p.message)))
        } else if self.paused_by_user() {
            (Phase::Paused, Some("manually paused".to_string()))
        } else if let Some(pause) = self.next.pause_conditions.as_deref().and_then(|p| p.first()) {
            (Phase::Paused, Some(self.waiting.clone().unwrap_or_else(|| pause.reason.clone())))
        } else if let Some(waiting) = self.waiting.clone() {
            (Phase::Progressing, Some(waiting))
        } else if restarting {
            (Phase::Progressing, Some("rollout is restarting".to_string()))
        } else if self.healthy() {
            (Phase::Healthy, None)
        } else {
            (Phase::Progressing, Some(self.default_progress_message()))
        };
        self.next.phase = Some(phase.as_str().into());
        self.next.message = match (self.notice.take(), message) {
            (Some(notice), Some(message)) => Some(format!("{notice}; {message}")),
            (notice, message) => notice.or(message),
        };
    }

    pub(super) fn default_progress_message(&self) -> String {
        let n = &self.next;
        if let (false, Some(step)) = (self.promoted(), self.current_step()) {
            return format!("step {}/{}: {}", self.index(), self.valid.steps.len(), step_list::describe_step(step));
        }
        if n.updated_replicas.unwrap_or(0) < self.replicas {
            "more replicas need to be updated".into()
        } else if n.available_replicas.unwrap_or(0) < n.updated_replicas.unwrap_or(0) {
            "updated replicas are still becoming available".into()
        } else if !self.routed() && n.replicas.unwrap_or(0) > n.updated_replicas.unwrap_or(0) {
            "old replicas are pending termination".into()
        } else {
            "waiting for all steps to complete".into()
        }
    }
}
