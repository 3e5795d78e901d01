//! Tests of the replica arithmetic, with upstream's examples.

use super::*;
use proptest::prelude::*;

fn pct(text: &str) -> IntOrString {
    IntOrString::String(text.into())
}

#[test]
fn fenceposts_follow_upstream_rounding() {
    assert_eq!(fenceposts(None, None, 4), (1, 1));
    assert_eq!(fenceposts(None, None, 10), (3, 2));
    assert_eq!(fenceposts(Some(&pct("20")), Some(&pct("20%")), 10), (2, 2), "a string without % is a percentage");
    assert_eq!(fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5), (0, 1));
    assert_eq!(fenceposts(Some(&IntOrString::Int(0)), Some(&pct("10%")), 3), (0, 1), "both resolve to zero");
    assert_eq!(fenceposts(None, Some(&IntOrString::Int(9)), 4), (1, 4), "capped at replicas");
}

#[test]
fn weighted_split_examples() {
    assert_eq!(weighted_split(10, 10, 3), (1, 9));
    assert_eq!(weighted_split(10, 41, 3), (4, 6));
    assert_eq!(weighted_split(1, 50, 1), (1, 1));
    assert_eq!(weighted_split(3, 50, 1), (2, 2));
    assert_eq!(weighted_split(3, 50, 0), (2, 1));
    assert_eq!(weighted_split(4, 25, 1), (1, 3));
    assert_eq!(weighted_split(4, 100, 1), (4, 0));
    assert_eq!(weighted_split(4, 0, 1), (0, 4));
    assert_eq!(weighted_split(0, 50, 1), (0, 0));
    assert_eq!(weighted_split(10, 5, 0), (1, 9), "never zero canary for 1..=99");
    assert_eq!(weighted_split(10, 5, 1), (1, 10), "one surge pod gets closer to 5%");
}

fn basic(
    replicas: i32,
    weight: i32,
    surge: i32,
    unavailable: i32,
    canary: (i32, i32),
    stable: (i32, i32),
) -> (i32, i32) {
    basic_canary(BasicCanary {
        replicas,
        weight,
        surge,
        unavailable,
        canary: Some(Scale { spec: canary.0, available: canary.1 }),
        stable: Some(Scale { spec: stable.0, available: stable.1 }),
        others_spec: 0,
    })
}

#[test]
fn basic_canary_first_moves() {
    // Surge room goes to the canary; unavailability lets the stable shrink.
    assert_eq!(basic(10, 10, 1, 1, (0, 0), (10, 10)), (1, 9));
    assert_eq!(basic(10, 30, 3, 0, (0, 0), (10, 10)), (3, 10));
    assert_eq!(basic(10, 30, 0, 5, (0, 0), (10, 10)), (0, 7));
    assert_eq!(basic(10, 5, 1, 1, (0, 0), (10, 10)), (1, 10));
    assert_eq!(basic(1, 5, 1, 0, (0, 0), (1, 1)), (1, 1));
    assert_eq!(basic(1, 95, 1, 0, (0, 0), (1, 1)), (1, 1));
}

#[test]
fn basic_canary_without_stable_is_the_whole_rollout() {
    let input =
        BasicCanary { replicas: 4, weight: 25, surge: 1, unavailable: 1, canary: None, stable: None, others_spec: 0 };
    assert_eq!(basic_canary(input), (4, 0));
}

#[test]
fn basic_canary_abort_shrinks_the_canary_within_unavailability() {
    // At 50% of 4 (2/2), abort asks for 0/4: one surge pod for the stable, one fewer canary.
    assert_eq!(basic(4, 0, 1, 1, (2, 2), (2, 2)), (1, 3));
    assert_eq!(basic(4, 0, 1, 1, (1, 1), (3, 3)), (0, 4));
}

#[test]
fn routed_canary_sizes() {
    let input = RoutedCanary {
        replicas: 5,
        weight: 10,
        max_weight: 100,
        explicit_canary: None,
        min_pods_per_replica_set: None,
        dynamic_stable_scale: false,
        actual_weights: None,
        aborted: false,
    };
    assert_eq!(routed_canary(input), (1, 5));
    assert_eq!(routed_canary(RoutedCanary { weight: 0, ..input }), (0, 5));
    assert_eq!(routed_canary(RoutedCanary { min_pods_per_replica_set: Some(2), ..input }), (2, 5));
    assert_eq!(
        routed_canary(RoutedCanary { min_pods_per_replica_set: Some(9), ..input }),
        (5, 5),
        "capped at replicas"
    );
    assert_eq!(routed_canary(RoutedCanary { explicit_canary: Some(2), weight: 0, ..input }), (2, 5));
    let dynamic = RoutedCanary { dynamic_stable_scale: true, weight: 60, ..input };
    assert_eq!(routed_canary(dynamic), (3, 2));
    assert_eq!(
        routed_canary(RoutedCanary { actual_weights: Some((10, 90)), ..dynamic }),
        (3, 5),
        "stable waits for traffic"
    );
    let aborting = RoutedCanary { weight: 0, aborted: true, actual_weights: Some((60, 40)), ..dynamic };
    assert_eq!(routed_canary(aborting), (3, 5), "canary waits for traffic on abort");
}

#[test]
fn routed_canary_sizes_count_in_max_traffic_weight() {
    let input = RoutedCanary {
        replicas: 10,
        weight: 5,
        max_weight: 1000,
        explicit_canary: None,
        min_pods_per_replica_set: None,
        dynamic_stable_scale: false,
        actual_weights: None,
        aborted: false,
    };
    assert_eq!(routed_canary(input), (1, 10), "0.5 % of 10 pods rounds up to one");
    assert_eq!(routed_canary(RoutedCanary { weight: 500, ..input }), (5, 10));
    assert_eq!(routed_canary(RoutedCanary { weight: 1000, ..input }), (10, 10));
    let dynamic = RoutedCanary { dynamic_stable_scale: true, weight: 600, ..input };
    assert_eq!(routed_canary(dynamic), (6, 4));
    assert_eq!(routed_canary(RoutedCanary { actual_weights: Some((5, 995)), ..dynamic }), (6, 10));
}

/// Random basic-canary situations: replicas, weight, surge, unavailable, canary and stable.
fn basic_situation() -> impl Strategy<Value = (i32, i32, i32, i32, Scale, Scale)> {
    (1..30i32, 0..=100i32, 0..6i32, 0..6i32, 0..35i32, 0..35i32, any::<(u8, u8)>()).prop_map(
        |(replicas, weight, surge, unavailable, canary_spec, stable_spec, (a, b))| {
            let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable.min(replicas) };
            let canary = Scale { spec: canary_spec, available: i32::from(a) % (canary_spec + 1) };
            let stable = Scale { spec: stable_spec, available: i32::from(b) % (stable_spec + 1) };
            (replicas, weight, surge, unavailable, canary, stable)
        },
    )
}

proptest! {
    #[test]
    fn basic_canary_never_exceeds_replicas_plus_surge(
        (replicas, weight, surge, unavailable, canary, stable) in basic_situation()
    ) {
        let input = BasicCanary { replicas, weight, surge, unavailable, canary: Some(canary), stable: Some(stable), others_spec: 0 };
        let (c, s) = basic_canary(input);
        prop_assert!(c >= 0 && s >= 0);
        let before = canary.spec + stable.spec;
        // Growth happens only within the surge budget; already being over it is only shrunk.
        prop_assert!(c + s <= before.max(replicas + surge), "{c}+{s} from {before}, max {}", replicas + surge);
    }

    #[test]
    fn basic_canary_keeps_minimum_availability_while_shrinking(
        (replicas, weight, surge, unavailable, canary, stable) in basic_situation()
    ) {
        let input = BasicCanary { replicas, weight, surge, unavailable, canary: Some(canary), stable: Some(stable), others_spec: 0 };
        let (c, s) = basic_canary(input);
        let available_now = canary.available + stable.available;
        let available_after = canary.available.min(c) + stable.available.min(s);
        let min_available = replicas - unavailable;
        prop_assert!(
            available_after >= available_now.min(min_available),
            "availability {available_now} -> {available_after}, minimum {min_available}"
        );
    }

    #[test]
    fn basic_canary_converges_to_the_weighted_split(
        replicas in 1..20i32, weight in 0..=100i32, surge in 0..4i32, unavailable in 0..4i32, start in 0..25i32
    ) {
        let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable.min(replicas) };
        let mut canary = Scale::default();
        let mut stable = Scale { spec: start.max(1), available: start.max(1) };
        // Pods become available as soon as they are asked for.
        for _ in 0..200 {
            let input = BasicCanary { replicas, weight, surge, unavailable, canary: Some(canary), stable: Some(stable), others_spec: 0 };
            let (c, s) = basic_canary(input);
            if (c, s) == (canary.spec, stable.spec) { break; }
            canary = Scale { spec: c, available: c };
            stable = Scale { spec: s, available: s };
        }
        let target = weighted_split(replicas, weight, surge);
        prop_assert_eq!((canary.spec, stable.spec), target);
    }

    #[test]
    fn routed_counts_are_never_negative_and_bounded(
        replicas in 0..1000i32, max_weight in prop_oneof![Just(100i32), 1..5000i32],
        weight in 0.0..=1.0f64, min in proptest::option::of(0..50i32),
        dynamic in any::<bool>(), aborted in any::<bool>(), actual in 0.0..=1.0f64
    ) {
        let share = |fraction: f64| (fraction * f64::from(max_weight)) as i32;
        let (weight, actual) = (share(weight), share(actual));
        let (c, s) = routed_canary(RoutedCanary {
            replicas, weight, max_weight, explicit_canary: None, min_pods_per_replica_set: min,
            dynamic_stable_scale: dynamic, actual_weights: Some((actual, max_weight - actual)), aborted,
        });
        prop_assert!((0..=replicas).contains(&c) && (0..=replicas).contains(&s), "{c} {s} of {replicas}");
    }
}
