//! A controller that crashes after any write: every settle gap still holds.

use super::sim::Sim;
use super::*;

/// Runs controllers that each make one write and crash, `restart` apart, until `done`; returns
/// the traffic (weights, stable and canary selectors) after each write with its time.
fn crash_after_every_write(
    sim: &mut Sim,
    restart: SignedDuration,
    done: impl Fn(&Sim) -> bool,
) -> Vec<(Timestamp, TrafficSeen)> {
    let mut seen = vec![(sim.observed.now, TrafficSeen::of(sim))];
    for _ in 0..400 {
        if done(sim) {
            return seen;
        }
        sim.catch_up();
        let plan = plan(&sim.observed);
        match plan.actions.first() {
            Some(first) => sim.apply_action(first),
            None => sim.observed.rollout.status = Some(plan.status.clone()),
        }
        let traffic = TrafficSeen::of(sim);
        if seen.last().is_none_or(|(_, last)| *last != traffic) {
            seen.push((sim.observed.now, traffic));
        }
        sim.observed.now += restart;
    }
    panic!("not done after 400 writes: {:#?}", sim.status());
}

#[derive(Clone, Debug, PartialEq)]
struct TrafficSeen {
    weights: (i64, i64),
    stable: Option<String>,
    canary: Option<String>,
}

impl TrafficSeen {
    fn of(sim: &Sim) -> Self {
        TrafficSeen {
            weights: sim.vs_weights(),
            stable: sim.selector("web-stable"),
            canary: sim.selector("web-canary"),
        }
    }
}

/// Time from the first state that `from` accepts to the next one that `to` accepts.
fn gap(
    seen: &[(Timestamp, TrafficSeen)],
    from: impl Fn(&TrafficSeen) -> bool,
    to: impl Fn(&TrafficSeen) -> bool,
) -> SignedDuration {
    let start = seen.iter().position(|(_, t)| from(t)).expect("the first state was seen");
    let end = start + seen[start..].iter().position(|(_, t)| to(t)).expect("the second state was seen");
    seen[end].0.duration_since(seen[start].0)
}

#[test]
fn every_settle_gap_survives_a_crash_after_any_write() {
    let settle = SignedDuration::from_secs(2);
    let restart = SignedDuration::from_millis(500);
    let (v1, v2) = (hash_of("v1"), hash_of("v2"));

    // Promotion: weight 100 to the canary, settle, stable Service to v2, settle, weights home.
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(None)]))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.pause_conditions = None);
    let seen = crash_after_every_write(&mut sim, restart, |sim| phase(sim) == "Healthy");
    let switch = gap(&seen, |t| t.weights == (0, 100), |t| t.stable.as_deref() == Some(v2.as_str()));
    assert!(switch >= settle, "stable Service switched {switch} after the canary got all traffic: {seen:#?}");
    let home = gap(&seen, |t| t.stable.as_deref() == Some(v2.as_str()), |t| t.weights == (100, 0));
    assert!(home >= settle, "weights returned {home} after the stable Service switch: {seen:#?}");

    // Abort: weight back to stable, settle, canary Service back to the stable pods.
    let mut sim = Sim::new(observed(with_istio(rollout(4, vec![set_weight(50), pause(None)]))));
    sim.settle();
    sim.update_template("v2");
    sim.settle();
    sim.set_status(|s| s.abort = Some(true));
    let seen =
        crash_after_every_write(&mut sim, restart, |sim| sim.selector("web-canary").as_deref() == Some(v1.as_str()));
    let back = gap(&seen, |t| t.weights == (100, 0), |t| t.canary.as_deref() == Some(v1.as_str()));
    assert!(back >= settle, "canary Service went back {back} after the weights: {seen:#?}");
}
