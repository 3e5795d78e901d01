//! Conditions: the progress deadline.

use super::sim::Sim;
use super::*;

#[test]
fn no_progress_for_the_deadline_is_degraded() {
    let mut spec = rollout(4, vec![set_weight(25), pause(None)]);
    spec.spec.progress_deadline_seconds = Some(60);
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    sim.ready = false;
    sim.update_template("v2");
    sim.settle();
    sim.wait(61);
    assert_eq!(phase(&sim), "Degraded");
    assert!(sim.status().message.unwrap_or_default().starts_with("ProgressDeadlineExceeded: ReplicaSet"));
    assert_eq!(sim.status().abort, None);
    // Pods that finally come up are progress again.
    sim.ready = true;
    sim.settle();
    assert_eq!(phase(&sim), "Paused");
}

#[test]
fn no_progress_for_the_deadline_can_abort() {
    let mut spec = rollout(4, vec![set_weight(25), pause(None)]);
    spec.spec.progress_deadline_seconds = Some(60);
    spec.spec.progress_deadline_abort = Some(true);
    let mut sim = Sim::new(observed(spec));
    sim.settle();
    sim.ready = false;
    sim.update_template("v2");
    sim.settle();
    assert_eq!(phase(&sim), "Progressing");
    let plan = plan(&sim.observed);
    assert_eq!(plan.requeue_at, Some(sim.observed.now + SignedDuration::from_secs(60)), "requeued at the deadline");
    sim.wait(61);
    let status = sim.status();
    assert_eq!(phase(&sim), "Degraded");
    let message = status.message.unwrap_or_default();
    assert!(message.starts_with("RolloutAborted: Rollout aborted update to revision 2: ReplicaSet"), "{message}");
    assert!(message.contains("has timed out progressing"), "{message}");
    assert_eq!(status.abort, Some(true), "progressDeadlineAbort aborts");
    assert_eq!(sim.rs(&hash_of("v2")).unwrap().spec_replicas, 0, "the canary goes away");
}
