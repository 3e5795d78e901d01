//! Snapshots of what `get`, `list` and `status` print, from fixture objects at a fixed time and
//! without colour. Review changes with `cargo insta review` (or INSTA_UPDATE=always).

mod fixtures;

use fixtures::{Fixture, Revision, fixture, now};
use kubectl_rollouts::family::{Family, Visible};
use kubectl_rollouts::phase::client_phase;
use kubectl_rollouts::render::{Style, Summary, render_get, render_list};

const STEPS: &str = "[{setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {duration: 30s}}]";

fn basic_rollout(status: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: shop, uid: uid-web, generation: 2, creationTimestamp: "2026-03-01T10:00:00Z"}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: web}}}}
  template: {{metadata: {{labels: {{app: web}}}}, spec: {{containers: [{{name: web, image: "nginx:1.27"}}]}}}}
  strategy: {{canary: {{steps: {STEPS}}}}}
status:
  observedGeneration: "2"
{status}"#
    )
}

fn healthy() -> Fixture {
    let rollout = basic_rollout(
        r#"  phase: Healthy
  currentPodHash: 7c9d8f6b5
  stableRS: 7c9d8f6b5
  currentStepIndex: 4
  replicas: 4
  updatedReplicas: 4
  readyReplicas: 4
  availableReplicas: 4
"#,
    );
    fixture(
        &rollout,
        &[
            Revision {
                hash: "7c9d8f6b5",
                revision: 2,
                image: "nginx:1.27",
                desired: 4,
                ready: 4,
                created: "2026-03-01T11:50:00Z",
            },
            Revision {
                hash: "5f6d7c8b9",
                revision: 1,
                image: "nginx:1.26",
                desired: 0,
                ready: 0,
                created: "2026-03-01T10:00:00Z",
            },
        ],
    )
}

/// An Istio canary at its 30 s pause, 12 s in, with an old revision waiting for its scale-down.
fn paused_with_countdown() -> Fixture {
    let rollout = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop, uid: uid-web, generation: 1, creationTimestamp: "2026-03-01T10:00:00Z"}
spec:
  replicas: 2
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      trafficRouting: {istio: {virtualService: {name: web, routes: [primary]}}}
      steps: [{setWeight: 25}, {pause: {}}, {setWeight: 50}, {pause: {duration: 30s}}, {setWeight: 100}]
status:
  observedGeneration: "1"
  phase: Paused
  message: CanaryPauseStep
  controllerPause: true
  pauseConditions: [{reason: CanaryPauseStep, startTime: "2026-03-01T11:59:48Z"}]
  currentPodHash: 7c9d8f6b5
  stableRS: 5f6d7c8b9
  currentStepIndex: 3
  canary:
    weights:
      canary: {weight: 50, serviceName: web-canary, podTemplateHash: 7c9d8f6b5}
      stable: {weight: 50, serviceName: web-stable, podTemplateHash: 5f6d7c8b9}
  replicas: 4
  updatedReplicas: 1
  readyReplicas: 4
  availableReplicas: 4
"#;
    let mut fixture = fixture(
        rollout,
        &[
            Revision {
                hash: "7c9d8f6b5",
                revision: 3,
                image: "nginx:1.27",
                desired: 1,
                ready: 1,
                created: "2026-03-01T11:58:30Z",
            },
            Revision {
                hash: "5f6d7c8b9",
                revision: 2,
                image: "nginx:1.26",
                desired: 2,
                ready: 2,
                created: "2026-03-01T11:00:00Z",
            },
            Revision {
                hash: "4b5c6d7f8",
                revision: 1,
                image: "nginx:1.25",
                desired: 1,
                ready: 1,
                created: "2026-03-01T10:00:00Z",
            },
        ],
    );
    let old = &mut fixture.replica_sets[2];
    old.metadata
        .annotations
        .get_or_insert_default()
        .insert("scale-down-deadline".into(), "2026-03-01T12:00:20Z".into());
    fixture
}

/// A basic canary whose first canary pod is still starting.
fn progressing() -> Fixture {
    let rollout = basic_rollout(
        r#"  phase: Progressing
  message: "waiting for canary ReplicaSet web-7c9d8f6b5: 0 of 1 pods available"
  currentPodHash: 7c9d8f6b5
  stableRS: 5f6d7c8b9
  currentStepIndex: 0
  replicas: 4
  updatedReplicas: 1
  readyReplicas: 3
  availableReplicas: 3
"#,
    );
    fixture(
        &rollout,
        &[
            Revision {
                hash: "7c9d8f6b5",
                revision: 2,
                image: "nginx:1.27",
                desired: 1,
                ready: 0,
                created: "2026-03-01T11:59:55Z",
            },
            Revision {
                hash: "5f6d7c8b9",
                revision: 1,
                image: "nginx:1.26",
                desired: 3,
                ready: 3,
                created: "2026-03-01T10:00:00Z",
            },
        ],
    )
}

fn degraded_after_abort() -> Fixture {
    let rollout = basic_rollout(
        r#"  phase: Degraded
  message: "RolloutAborted: Rollout aborted update to revision 2"
  abort: true
  abortedAt: "2026-03-01T11:59:00Z"
  currentPodHash: 7c9d8f6b5
  stableRS: 5f6d7c8b9
  currentStepIndex: 1
  replicas: 4
  updatedReplicas: 0
  readyReplicas: 4
  availableReplicas: 4
"#,
    );
    fixture(
        &rollout,
        &[
            Revision {
                hash: "7c9d8f6b5",
                revision: 2,
                image: "nginx:1.27",
                desired: 0,
                ready: 0,
                created: "2026-03-01T11:55:00Z",
            },
            Revision {
                hash: "5f6d7c8b9",
                revision: 1,
                image: "nginx:1.26",
                desired: 4,
                ready: 4,
                created: "2026-03-01T10:00:00Z",
            },
        ],
    )
}

fn invalid_spec() -> Fixture {
    let rollout = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop, uid: uid-web, generation: 1, creationTimestamp: "2026-03-01T11:59:30Z"}
spec:
  replicas: 2
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy: {canary: {steps: [{setWeight: 50}]}}
status:
  observedGeneration: "1"
  phase: Degraded
  message: "InvalidSpec: The Rollout \"web\" is invalid: spec.workloadRef: Deployment \"web\" not found"
"#;
    fixture(rollout, &[])
}

#[test]
fn get_healthy() {
    insta::assert_snapshot!(healthy().get());
}

#[test]
fn get_paused_with_a_countdown() {
    insta::assert_snapshot!(paused_with_countdown().get());
}

#[test]
fn get_progressing() {
    insta::assert_snapshot!(progressing().get());
}

#[test]
fn get_degraded_after_abort() {
    insta::assert_snapshot!(degraded_after_abort().get());
}

#[test]
fn get_invalid_spec() {
    insta::assert_snapshot!(invalid_spec().get());
}

#[test]
fn get_without_permission_to_list_replica_sets() {
    let fixture = progressing();
    let family = Family::of(&fixture.rollout, Visible::Forbidden, Visible::Forbidden, Visible::Forbidden);
    insta::assert_snapshot!(render_get(&fixture.rollout, &family, now(), Style::PLAIN));
}

#[test]
fn get_without_permission_to_list_pods() {
    let fixture = healthy();
    let family = Family { pods: Visible::Forbidden, ..fixture.family() };
    insta::assert_snapshot!(render_get(&fixture.rollout, &family, now(), Style::PLAIN));
}

#[test]
fn get_with_icons() {
    let fixture = paused_with_countdown();
    let icons = Style { color: false, icons: true };
    insta::assert_snapshot!(render_get(&fixture.rollout, &fixture.family(), now(), icons));
}

fn all_fixtures() -> Vec<Fixture> {
    vec![healthy(), paused_with_countdown(), progressing(), degraded_after_abort(), invalid_spec()]
}

/// Each fixture as a differently named rollout, so one table shows them all.
fn summaries() -> Vec<Summary> {
    let names = ["healthy", "paused", "progressing", "aborted", "invalid"];
    all_fixtures()
        .iter()
        .zip(names)
        .map(|(fixture, name)| Summary { name: name.to_string(), ..fixture.summary() })
        .collect()
}

#[test]
fn list() {
    insta::assert_snapshot!(render_list(&summaries(), false, Style::PLAIN));
}

#[test]
fn list_all_namespaces() {
    insta::assert_snapshot!(render_list(&summaries(), true, Style::PLAIN));
}

#[test]
fn status_lines() {
    let lines: Vec<String> = all_fixtures().iter().map(|f| client_phase(&f.rollout, None).to_string()).collect();
    insta::assert_snapshot!(lines.join("\n"));
}
