//! Old ReplicaSets: scale-down deadlines after promotion and abort, and deleting revisions past
//! revisionHistoryLimit.

use std::collections::BTreeMap;

use super::planner::Planner;
use super::replicas::{self};
use super::{Action, ReplicaSetView, seconds};
use crate::api::SCALE_DOWN_DEADLINE_ANNOTATION;

/// Default seconds old pods are kept after traffic leaves them (traffic routing only).
const DEFAULT_SCALE_DOWN_DELAY: i32 = 30;
const DEFAULT_REVISION_HISTORY_LIMIT: usize = 10;

impl<'a> Planner<'a> {
    /// An aborted, traffic-routed canary is scaled down once its traffic is gone and
    /// abortScaleDownDelaySeconds have passed.
    pub(super) fn abort_scale_down_due(&self) -> bool {
        let Some(rs) = self.new_rs else { return true };
        rs.scale_down_deadline.is_some_and(|deadline| self.now >= deadline)
            || self.valid.canary.abort_scale_down_delay_seconds == Some(0) && self.canary_traffic_gone()
    }

    /// No weight and no Service sends traffic to the current template's pods.
    pub(super) fn canary_traffic_gone(&self) -> bool {
        let weights_zero = self.observed_weights().iter().all(|w| *w == 0);
        let selected = self.valid.services.is_some_and(|(stable, canary)| {
            [stable, canary].iter().any(|s| self.service_hash(s) == Some(self.hash.as_str()))
        });
        weights_zero && !selected
    }

    /// Hashes a Service selects, the stable's and the current template's: their pods must stay.
    pub(super) fn referenced(&self, hash: &str) -> bool {
        let by_service = self.valid.services.is_some_and(|(stable, canary)| {
            [stable, canary].iter().any(|service| self.service_hash(service) == Some(hash))
        });
        by_service || self.stable_hash() == Some(hash) || hash == self.hash
    }

    pub(super) fn scale_down_others(&mut self) {
        let mut others: Vec<&'a ReplicaSetView> = self
            .others()
            .filter(|rs| (rs.spec_replicas > 0 || rs.scale_down_deadline.is_some()) && !self.sized.contains(&rs.name))
            .collect();
        others.sort_by_key(|rs| std::cmp::Reverse(rs.revision));
        if self.routed() {
            let delay = i64::from(self.valid.canary.scale_down_delay_seconds.unwrap_or(DEFAULT_SCALE_DOWN_DELAY));
            let dynamic = self.valid.canary.dynamic_stable_scale == Some(true);
            let limit = self
                .valid
                .canary
                .scale_down_delay_revision_limit
                .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(0));
            let mut delayed = 0;
            for rs in others {
                if self.referenced(&rs.hash) {
                    continue;
                }
                match rs.scale_down_deadline {
                    Some(deadline) if self.now < deadline && rs.spec_replicas > 0 && delayed < limit => {
                        delayed += 1;
                        self.requeue_at(deadline);
                    }
                    Some(_) => {
                        self.patch_rs(rs, 0, BTreeMap::from([(SCALE_DOWN_DEADLINE_ANNOTATION.to_string(), None)]))
                    }
                    None if dynamic || delay == 0 || delayed >= limit => self.patch_rs(rs, 0, BTreeMap::new()),
                    None => {
                        delayed += 1;
                        let deadline = self.now + seconds(delay);
                        self.set_deadline(&rs.name, Some(deadline));
                        self.requeue_at(deadline);
                    }
                }
            }
            return;
        }
        // Basic canary: older pods go first, within maxUnavailable.
        let (_, unavailable) = self.fenceposts();
        let total_available: i32 = self.observed.replica_sets.iter().map(|rs| rs.available).sum();
        let mut budget = replicas::old_scale_down_budget(total_available, self.replicas, unavailable);
        for rs in others {
            // A Service still selecting them keeps their pods until it has moved (`route_services`).
            if rs.spec_replicas == 0 || self.referenced(&rs.hash) {
                continue;
            }
            // Pods that never became available cost no availability.
            let unavailable_pods = (rs.spec_replicas - rs.available).max(0);
            let shrink = (unavailable_pods + budget.min(rs.available)).min(rs.spec_replicas);
            budget -= shrink - unavailable_pods;
            if shrink > 0 {
                self.patch_rs(rs, rs.spec_replicas - shrink, BTreeMap::new());
            } else if self.waiting.is_none() {
                self.wait(format!("waiting for old ReplicaSet {} to scale down", rs.name));
            }
        }
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond revisionHistoryLimit.
    pub(super) fn clean_up_history(&mut self) {
        let limit = self
            .observed
            .rollout
            .spec
            .revision_history_limit
            .map_or(DEFAULT_REVISION_HISTORY_LIMIT, |l| usize::try_from(l).unwrap_or(0));
        let mut candidates: Vec<&ReplicaSetView> = self.others().filter(|rs| rs.owned).collect();
        if candidates.len() <= limit {
            return;
        }
        candidates.sort_by_key(|rs| (rs.created, rs.revision));
        let excess = candidates.len() - limit;
        for rs in candidates.into_iter().take(excess) {
            if rs.spec_replicas == 0 && rs.status_replicas == 0 && rs.status_current && !self.sized.contains(&rs.name) {
                self.actions.push(Action::DeleteReplicaSet { name: rs.name.clone() });
                self.actions.push(Action::DeleteTemplateRecord { name: rs.name.clone() });
            }
        }
    }
}
