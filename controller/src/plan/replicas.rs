//! Replica arithmetic for the canary: how many pods the canary and stable ReplicaSets get at a
//! weight, within maxSurge / maxUnavailable (basic canary) or sized by traffic (traffic routing).
//! Pure functions over counts; the numbers are upstream's (Argo Rollouts'
//! `utils/replicaset/canary.go`), so a Rollout sizes the same under either controller.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What one ReplicaSet has: desired pods (`spec.replicas`) and available pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scale {
    pub spec: i32,
    pub available: i32,
}

/// A count or percentage of `replicas`. Like upstream, a string is always a percentage, with or
/// without `%`. Percentages round up for surge and down for unavailability.
fn resolve(value: &IntOrString, replicas: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(count) => (*count).max(0),
        IntOrString::String(text) => {
            let percent: i64 = text.trim_end_matches('%').parse().unwrap_or(0);
            let scaled = percent.max(0) * i64::from(replicas);
            let count = if round_up { (scaled + 99) / 100 } else { scaled / 100 };
            i32::try_from(count).unwrap_or(i32::MAX)
        }
    }
}

/// maxSurge and maxUnavailable as pod counts (defaults 25% each). When both come to zero,
/// unavailability is 1 so the rollout can move; unavailability never exceeds `replicas`.
pub fn fenceposts(max_surge: Option<&IntOrString>, max_unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let default = IntOrString::String("25%".into());
    let surge = resolve(max_surge.unwrap_or(&default), replicas, true);
    let mut unavailable = resolve(max_unavailable.unwrap_or(&default), replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas.max(0)))
}

/// Pods for `weight` out of `max` of `replicas`, rounded up.
pub fn weight_to_replicas(replicas: i32, weight: i32, max: i32) -> i32 {
    let max = i64::from(max.max(1));
    let pods = (i64::from(replicas.max(0)) * i64::from(weight).clamp(0, max) + max - 1) / max;
    i32::try_from(pods).unwrap_or(i32::MAX)
}

/// The canary/stable split that best approximates `weight` percent of pods. The total is
/// `replicas`, or one more when surge allows and it gets closer. For weights 1..=99 neither side
/// is left at zero when there are two or more pods to share.
pub fn weighted_split(replicas: i32, weight: i32, surge: i32) -> (i32, i32) {
    if replicas <= 0 {
        return (0, 0);
    }
    let weight = weight.clamp(0, 100);
    let exact = |total: i32| f64::from(total) * f64::from(weight) / 100.0;
    let canary_up = exact(replicas).ceil() as i32;
    let canary_down = exact(replicas).floor() as i32;
    let tied = |total: i32| exact(total).fract() == 0.5;
    let zero_allowed = weight == 100 || weight == 0 || (replicas == 1 && surge == 0);

    // (canary, total) candidates, in order of preference when equally close.
    let mut candidates = Vec::with_capacity(4);
    if canary_up < replicas || zero_allowed {
        candidates.push((canary_up, replicas));
    }
    if !tied(replicas) && (canary_down != 0 || zero_allowed) {
        candidates.push((canary_down, replicas));
    }
    if surge > 0 {
        candidates.push((canary_up, replicas + 1));
        if !tied(replicas + 1) && (canary_down != 0 || zero_allowed) {
            candidates.push((canary_down, replicas + 1));
        }
    }
    let distance =
        |(canary, total): (i32, i32)| (f64::from(canary) * 100.0 / f64::from(total) - f64::from(weight)).abs();
    let best = candidates
        .into_iter()
        .fold(None, |best: Option<(i32, i32)>, candidate| match best {
            Some(b) if distance(b) <= distance(candidate) => Some(b),
            _ => Some(candidate),
        })
        .unwrap_or((0, replicas));
    (best.0, best.1 - best.0)
}

/// Inputs of a basic (no traffic router) canary step.
#[derive(Clone, Copy, Debug)]
pub struct BasicCanary {
    pub replicas: i32,
    pub weight: i32,
    pub surge: i32,
    pub unavailable: i32,
    /// The ReplicaSet of the current template; `None` before it is created.
    pub canary: Option<Scale>,
    /// The stable ReplicaSet when it differs from the canary.
    pub stable: Option<Scale>,
    /// Desired pods of every other ReplicaSet of the rollout.
    pub others_spec: i32,
}

/// Pods this reconcile may give the canary and stable ReplicaSets on the way to `weight`, never
/// exceeding replicas+surge in total and never taking availability below replicas-unavailable.
pub fn basic_canary(input: BasicCanary) -> (i32, i32) {
    let BasicCanary { replicas, weight, surge, unavailable, canary, stable, others_spec } = input;
    let canary_now = canary.unwrap_or_default();
    let Some(stable_now) = stable else {
        // Nothing to split with: the canary is the whole rollout.
        return (replicas, 0);
    };
    let (want_canary, want_stable) = weighted_split(replicas, weight, surge);
    let max_total = replicas.saturating_add(surge);
    let mut canary_count = canary_now.spec;
    let mut stable_count = stable_now.spec;

    // Grow toward the targets with the room under max_total, the stable first.
    let mut room = max_total - (canary_now.spec + stable_now.spec + others_spec);
    if room > 0 && stable_count < want_stable {
        let grown = (stable_count + room).min(want_stable);
        room -= grown - stable_count;
        stable_count = grown;
    }
    if room > 0 && canary_count < want_canary {
        canary_count = (canary_count + room).min(want_canary);
    }
    // Older ReplicaSets give up their pods before the canary or stable shrink.
    if others_spec > 0 {
        return (canary_count, stable_count);
    }

    let min_available = replicas - unavailable;
    let canary_growing = want_canary >= canary_now.spec;
    // The side we shrink is counted by its desired pods (its availability may never come);
    // the side we keep is counted by what is actually available.
    let counted = |rs: Scale, shrinking: bool| {
        if rs.spec < rs.available || shrinking { rs.spec } else { rs.available }
    };
    let countable = counted(canary_now, !canary_growing) + counted(stable_now, canary_growing);
    if countable <= min_available {
        return (canary_count, stable_count);
    }
    let shrinkable = countable - min_available;
    if canary_growing {
        if stable_now.spec > want_stable {
            stable_count = want_stable.max(stable_now.spec - shrinkable);
        }
        let (stable_count, canary_count) =
            keep_within_limits(stable_now, canary_now, stable_count, canary_count, max_total, min_available);
        (canary_count, stable_count)
    } else {
        if canary_now.spec > want_canary {
            canary_count = want_canary.max(canary_now.spec - shrinkable);
        }
        keep_within_limits(canary_now, stable_now, canary_count, stable_count, max_total, min_available)
    }
}

/// After shrinking `draining`, takes back from `other` what pushes the total over max_total,
/// but not so much that availability falls below min_available; the draining side pays the rest.
fn keep_within_limits(
    draining: Scale,
    other: Scale,
    draining_count: i32,
    other_count: i32,
    max_total: i32,
    min_available: i32,
) -> (i32, i32) {
    let over = (draining_count + other_count - max_total).max(0);
    let trimmed = other_count - over;
    let available_after = draining.available.min(draining_count) + other.available.min(trimmed);
    let lost_availability = (other.available - trimmed).max(0);
    let missing = (min_available - available_after).max(0);
    let other_count = trimmed + lost_availability.min(missing);
    let over = (draining_count + other_count - max_total).max(0);
    (draining_count - over, other_count)
}

/// How many pods the other (older) ReplicaSets may lose this reconcile: what is available
/// across the rollout above replicas-unavailable.
pub fn old_scale_down_budget(total_available: i32, replicas: i32, unavailable: i32) -> i32 {
    (total_available - (replicas - unavailable)).max(0)
}

/// Inputs of a traffic-routed canary step.
#[derive(Clone, Copy, Debug)]
pub struct RoutedCanary {
    pub replicas: i32,
    /// Canary weight the step asks for, out of `max_weight`.
    pub weight: i32,
    /// What the canary and stable weights add up to (`maxTrafficWeight`).
    pub max_weight: i32,
    /// An explicit canary size from setCanaryScale{replicas}.
    pub explicit_canary: Option<i32>,
    pub min_pods_per_replica_set: Option<i32>,
    pub dynamic_stable_scale: bool,
    /// Weights the traffic router holds now (canary, stable), for dynamicStableScale.
    pub actual_weights: Option<(i32, i32)>,
    pub aborted: bool,
}

/// Canary and stable sizes with a traffic router: the canary follows the weight (or
/// setCanaryScale), the stable stays at full size unless dynamicStableScale shrinks it behind
/// the traffic actually moved.
pub fn routed_canary(input: RoutedCanary) -> (i32, i32) {
    let RoutedCanary {
        replicas,
        weight,
        max_weight,
        explicit_canary,
        min_pods_per_replica_set,
        dynamic_stable_scale,
        actual_weights,
        aborted,
    } = input;
    let at_least_min = |count: i32| match min_pods_per_replica_set {
        Some(min) if count > 0 => count.max(min.min(replicas)),
        _ => count,
    };
    let pods = |weight: i32| weight_to_replicas(replicas, weight, max_weight);
    let mut canary = explicit_canary.unwrap_or_else(|| at_least_min(pods(weight)));
    if !dynamic_stable_scale {
        return (canary, replicas);
    }
    let mut stable = pods(max_weight - weight);
    if let Some((actual_canary, actual_stable)) = actual_weights {
        // Shrink the stable only after traffic has left it; keep the canary until it has too.
        stable = stable.max(pods(actual_stable));
        if aborted {
            canary = canary.max(pods(actual_canary));
        }
    }
    (at_least_min(canary), at_least_min(stable))
}

#[cfg(test)]
mod tests;
