//! The analysis engine's decisions, without a cluster: a run is started, its due measurements
//! are answered by the test, and the status that follows is checked.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use serde_json::json;

use super::condition::Value;
use super::evaluate::judge;
use super::metric::{Invalid, prepare};
use super::plan::{Finished, Start, finish, start};
use super::schedule::{Due, Task, later};
use crate::api::{AnalysisPhase, AnalysisRun, AnalysisRunSpec, Measurement};

fn t(seconds: u64) -> Timestamp {
    later(Timestamp::UNIX_EPOCH, Duration::from_secs(1_800_000_000 + seconds))
}

fn run(spec: serde_json::Value) -> AnalysisRun {
    let spec: AnalysisRunSpec = serde_json::from_value(spec).expect("a valid spec");
    let mut run = AnalysisRun::new("run", spec);
    run.metadata = ObjectMeta {
        name: Some("run".into()),
        namespace: Some("ns".into()),
        uid: Some("uid-1".into()),
        ..Default::default()
    };
    run
}

fn prometheus(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut metric = json!({
        "name": name,
        "successCondition": "result[0] >= 0.95",
        "provider": {"prometheus": {"address": "http://127.0.0.1:9", "query": "up"}}
    });
    metric.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    metric
}

/// A measurement the provider answered with `value`, judged by the metric, at `at`.
fn answered(run: &AnalysisRun, metric: usize, value: Value, at: Timestamp) -> Measurement {
    let metrics = prepare(&run.spec, &run.metadata, &Default::default()).unwrap();
    let (phase, message) = judge(&metrics[metric], &value);
    Measurement {
        phase,
        message,
        value: Some(value.to_string()),
        started_at: Some(MicroTime(at)),
        finished_at: Some(MicroTime(at)),
        ..Default::default()
    }
}

fn error_at(at: Timestamp) -> Measurement {
    Measurement {
        phase: AnalysisPhase::Error,
        message: Some("connection refused".into()),
        started_at: Some(MicroTime(at)),
        finished_at: Some(MicroTime(at)),
        ..Default::default()
    }
}

/// One reconcile at `now`: every due measurement of metric 0 is answered by `answer`.
fn step(run: &mut AnalysisRun, now: Timestamp, answer: impl Fn(Timestamp) -> Measurement) -> (Vec<Due>, Finished) {
    let Start::Measuring(measuring) = start(run, now) else { panic!("the run is not measuring") };
    let due = measuring.schedule.due.clone();
    let measured = due.iter().map(|due| (*due, answer(now))).collect();
    let finished = finish(run, measuring, measured, now);
    run.status = Some(finished.status.clone());
    (due, finished)
}

fn numbers(values: &[f64]) -> Value {
    Value::List(values.iter().map(|v| Value::Number(*v)).collect())
}

#[test]
fn count_three_with_one_failure_allowed_fails_at_the_second_failure() {
    let mut run = run(json!({"metrics": [prometheus("m", json!({"interval": "1m", "count": 3, "failureLimit": 1}))]}));
    let probe = run.clone();
    let mut now = t(0);
    for (index, value) in [0.99, 0.5, 0.4].into_iter().enumerate() {
        let (due, finished) = step(&mut run, now, |at| answered(&probe, 0, numbers(&[value]), at));
        assert_eq!(due.len(), 1, "measurement {index} is due at {now}");
        if index < 2 {
            assert_eq!(finished.status.phase, AnalysisPhase::Running);
            assert_eq!(finished.requeue_at, Some(later(now, Duration::from_secs(60))));
            now = later(now, Duration::from_secs(60));
        } else {
            assert_eq!(finished.status.phase, AnalysisPhase::Failed);
            let message = finished.status.message.unwrap();
            let expected = "Metric \"m\" assessed Failed due to failed (2) > failureLimit (1): value [0.4] does not satisfy successCondition \"result[0] >= 0.95\"";
            assert_eq!(message, expected);
            assert!(finished.events.iter().any(|e| e.reason == "AnalysisRunFailed" && e.warning));
        }
    }
}

#[test]
fn a_measurement_is_not_due_before_its_interval() {
    let mut run = run(json!({"metrics": [prometheus("m", json!({"interval": "30s", "count": 2}))]}));
    let probe = run.clone();
    let (due, _) = step(&mut run, t(0), |at| answered(&probe, 0, numbers(&[0.99]), at));
    assert_eq!(due.len(), 1);
    let (due, finished) = step(&mut run, t(29), |_| panic!("nothing is due"));
    assert!(due.is_empty());
    assert_eq!(finished.requeue_at, Some(t(30)));
    assert_eq!(finished.status, run.status.clone().unwrap(), "an idle look changes nothing");
    let (due, finished) = step(&mut run, t(30), |at| answered(&probe, 0, numbers(&[0.99]), at));
    assert_eq!(due.len(), 1);
    assert_eq!(finished.status.phase, AnalysisPhase::Successful);
    assert_eq!(finished.status.metric_results[0].count, 2);
}

#[test]
fn the_fifth_error_in_a_row_ends_the_run_in_error_and_errors_do_not_use_up_the_count() {
    let mut run = run(json!({"metrics": [prometheus("m", json!({"interval": "1m", "count": 2}))]}));
    let mut now = t(0);
    for attempt in 1..=5 {
        let (due, finished) = step(&mut run, now, error_at);
        assert_eq!(due.len(), 1, "attempt {attempt}");
        let result = &finished.status.metric_results[0];
        assert_eq!((result.count, result.error, result.consecutive_error), (0, attempt, attempt));
        if attempt < 5 {
            assert_eq!(finished.status.phase, AnalysisPhase::Running);
            // Errors are retried after 10 s, not after the interval.
            assert_eq!(finished.requeue_at, Some(later(now, Duration::from_secs(10))));
            now = later(now, Duration::from_secs(10));
        } else {
            assert_eq!(finished.status.phase, AnalysisPhase::Error);
            let message = finished.status.message.unwrap();
            assert!(message.contains("consecutiveErrors (5) > consecutiveErrorLimit (4)"), "{message}");
        }
    }
}

#[test]
fn an_error_between_successes_resets_the_error_streak() {
    let mut run = run(json!({"metrics": [prometheus("m", json!({"interval": "10s", "count": 3}))]}));
    let probe = run.clone();
    step(&mut run, t(0), error_at);
    step(&mut run, t(10), |at| answered(&probe, 0, numbers(&[0.99]), at));
    let result = &run.status.as_ref().unwrap().metric_results[0];
    assert_eq!((result.consecutive_error, result.count, result.error), (0, 1, 1));
}

#[test]
fn neither_condition_met_is_inconclusive() {
    let mut run = run(json!({"metrics": [prometheus("m", json!({
        "successCondition": "result[0] >= 0.99", "failureCondition": "result[0] < 0.9"
    }))]}));
    let probe = run.clone();
    let (_, finished) = step(&mut run, t(0), |at| answered(&probe, 0, numbers(&[0.95]), at));
    assert_eq!(finished.status.phase, AnalysisPhase::Inconclusive);
    assert!(finished.status.message.unwrap().contains("inconclusive (1) > inconclusiveLimit (0)"));
}

#[test]
fn no_data_is_an_error_that_says_so_unless_the_condition_guards_it() {
    let bare = run(json!({"metrics": [prometheus("m", json!({}))]}));
    let metrics = prepare(&bare.spec, &bare.metadata, &Default::default()).unwrap();
    let (phase, message) = judge(&metrics[0], &Value::List(vec![]));
    assert_eq!(phase, AnalysisPhase::Error);
    assert!(message.unwrap().starts_with("no data: the provider returned []"));
    let guarded =
        run(json!({"metrics": [prometheus("m", json!({"successCondition": "len(result) > 0 && result[0] >= 0.95"}))]}));
    let metrics = prepare(&guarded.spec, &guarded.metadata, &Default::default()).unwrap();
    assert_eq!(judge(&metrics[0], &Value::List(vec![])).0, AnalysisPhase::Failed);
}

#[test]
fn a_dry_run_metric_never_fails_the_run() {
    let mut run = run(json!({
        "metrics": [prometheus("shadow", json!({})), prometheus("real", json!({}))],
        "dryRun": [{"metricName": "shad.*"}]
    }));
    let probe = run.clone();
    let Start::Measuring(measuring) = start(&run, t(0)) else { panic!() };
    let measured = measuring
        .schedule
        .due
        .iter()
        .map(|due| (*due, answered(&probe, due.metric, numbers(&[if due.metric == 0 { 0.1 } else { 0.99 }]), t(0))))
        .collect();
    let finished = finish(&run, measuring, measured, t(0));
    run.status = Some(finished.status.clone());
    assert_eq!(finished.status.phase, AnalysisPhase::Successful);
    let shadow = &finished.status.metric_results[0];
    assert!(shadow.dry_run);
    assert_eq!(shadow.phase, AnalysisPhase::Failed);
    assert_eq!(shadow.message.as_deref(), Some("Metric assessed Failed due to failed (1) > failureLimit (0)"));
    assert_eq!(finished.status.dry_run_summary.as_ref().map(|s| s.failed), Some(1));
    assert_eq!(finished.status.run_summary.as_ref().map(|s| (s.count, s.successful)), Some((1, 1)));
}

#[test]
fn retention_keeps_the_newest_measurements() {
    let mut run = run(json!({
        "metrics": [prometheus("m", json!({"interval": "1s", "count": 5}))],
        "measurementRetention": [{"metricName": "m", "limit": 2}]
    }));
    let probe = run.clone();
    for second in 0..5 {
        step(&mut run, t(second), |at| answered(&probe, 0, numbers(&[1.0 + second as f64]), at));
    }
    let result = &run.status.as_ref().unwrap().metric_results[0];
    assert_eq!(result.count, 5);
    let values: Vec<_> = result.measurements.iter().map(|m| m.value.clone().unwrap()).collect();
    assert_eq!(values, ["[4]", "[5]"]);
}

#[test]
fn terminate_stops_without_a_false_success() {
    let mut run = run(json!({"metrics": [
        prometheus("measured", json!({"interval": "10s"})),
        prometheus("never", json!({"initialDelay": "1h"}))
    ]}));
    let probe = run.clone();
    step(&mut run, t(0), |at| answered(&probe, 0, numbers(&[0.99]), at));
    run.spec.terminate = true;
    let (due, finished) = step(&mut run, t(5), |_| panic!("nothing is measured while terminating"));
    assert!(due.is_empty());
    let phases: Vec<_> = finished.status.metric_results.iter().map(|r| r.phase).collect();
    assert_eq!(phases, [AnalysisPhase::Successful, AnalysisPhase::Inconclusive]);
    assert_eq!(finished.status.phase, AnalysisPhase::Inconclusive);
}

#[test]
fn an_in_flight_job_is_terminated_when_a_sibling_fails() {
    let mut run = run(json!({"metrics": [
        prometheus("fails", json!({})),
        {"name": "job", "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}}
    ]}));
    let probe = run.clone();
    let Start::Measuring(measuring) = start(&run, t(0)) else { panic!() };
    let in_flight = Measurement {
        phase: AnalysisPhase::Running,
        started_at: Some(MicroTime(t(0))),
        resume_at: Some(MicroTime(t(1))),
        ..Default::default()
    };
    let measured = measuring
        .schedule
        .due
        .iter()
        .map(|due| (*due, if due.metric == 0 { answered(&probe, 0, numbers(&[0.1]), t(0)) } else { in_flight.clone() }))
        .collect();
    let finished = finish(&run, measuring, measured, t(0));
    assert_eq!(finished.requeue_at, Some(t(0)), "the sibling is stopped at once");
    run.status = Some(finished.status);
    let Start::Measuring(measuring) = start(&run, t(0)) else { panic!() };
    assert_eq!(measuring.schedule.due.iter().map(|d| (d.metric, d.task)).collect::<Vec<_>>(), [(1, Task::Terminate)]);
}

#[test]
fn ttl_deletes_a_completed_run_after_its_time() {
    let mut run = run(json!({
        "metrics": [prometheus("m", json!({}))],
        "ttlStrategy": {"secondsAfterSuccess": 30, "secondsAfterCompletion": 300}
    }));
    let probe = run.clone();
    let (_, finished) = step(&mut run, t(0), |at| answered(&probe, 0, numbers(&[0.99]), at));
    assert_eq!(finished.status.phase, AnalysisPhase::Successful);
    assert_eq!(finished.requeue_at, Some(t(30)));
    assert!(matches!(start(&run, t(31)), Start::Completed { expires_at: Some(at) } if at == t(30)));
}

#[test]
fn bad_specs_are_reported_with_the_field_before_any_measurement() {
    let cases = [
        (json!({"metrics": []}), "Analysis spec invalid: no metrics specified"),
        (
            json!({"metrics": [prometheus("m", json!({"successCondition": "result[0] >= "}))]}),
            "Analysis spec invalid: metrics[0]: successCondition \"result[0] >= \": column",
        ),
        (
            json!({"metrics": [prometheus("m", json!({"count": 3}))]}),
            "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
        ),
        (
            json!({"metrics": [prometheus("m", json!({"interval": "5 minutes"}))]}),
            "Analysis spec invalid: metrics[0]: invalid interval string",
        ),
        (
            json!({"metrics": [prometheus("m", json!({"interval": "0s"}))]}),
            "Analysis spec invalid: metrics[0]: interval must be at least 1s",
        ),
        (
            json!({"metrics": [{"name": "m", "provider": {}}]}),
            "Analysis spec invalid: metrics[0]: no provider specified",
        ),
        (
            json!({"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}, "job": {"spec": {}}}}]}),
            "Analysis spec invalid: metrics[0]: multiple providers specified",
        ),
        (
            json!({"metrics": [{"name": "m", "provider": {"datadog": {"query": "q"}}}]}),
            "Analysis spec invalid: metrics[0]: provider datadog is not supported by this controller yet",
        ),
        (
            json!({"args": [{"name": "service"}], "metrics": [prometheus("m", json!({}))]}),
            "Unable to resolve metric arguments: argument \"service\" was not supplied",
        ),
        (
            json!({"metrics": [prometheus("m", json!({"successCondition": "result == '{{args.missing}}'"}))]}),
            "Unable to resolve metric arguments: failed to resolve {{args.missing}}",
        ),
        (
            json!({"metrics": [prometheus("m", json!({}))], "dryRun": [{"metricName": "other"}]}),
            "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)",
        ),
    ];
    for (spec, expected) in cases {
        let run = run(spec);
        let Start::Invalid(finished) = start(&run, t(0)) else { panic!("{expected}: the run was accepted") };
        assert_eq!(finished.status.phase, AnalysisPhase::Error);
        let message = finished.status.message.unwrap();
        assert!(message.starts_with(expected), "{message}\n  expected: {expected}");
    }
}

#[test]
fn long_values_are_cut_and_secrets_are_hidden_in_every_form() {
    let long = Value::String("x".repeat(5000));
    let text = super::evaluate::shown(&long);
    assert!(text.ends_with("… (3976 more characters)") && text.chars().count() < 1100, "{text}");
    let secret = "p@ss \"word\"/1";
    let message = format!("GET http://h/?t=p%40ss%20%22word%22%2F1 failed; header {secret:?}; raw {secret}");
    assert_eq!(super::args::redact(&message, &[secret]), "GET http://h/?t=***** failed; header \"*****\"; raw *****");
}

#[test]
fn arguments_fill_every_string_and_secrets_stay_masked() {
    let run = run(json!({
        "args": [{"name": "svc", "value": "canary"}, {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                 {"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "metrics": [{"name": "m", "count": "{{ args.n }}", "provider": {"prometheus": {
            "address": "http://p:9090", "query": "rate{service=\"{{args.svc}}\",ns=\"{{args.ns}}\"}",
            "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}]}}}]
    }));
    let mut with_count = run.clone();
    with_count.spec.args.push(serde_json::from_value(json!({"name": "n", "value": "1"})).unwrap());
    let metrics = prepare(&with_count.spec, &with_count.metadata, &Default::default()).unwrap();
    let query = metrics[0].metric.provider.prometheus.as_ref().unwrap();
    assert_eq!(query.query, "rate{service=\"canary\",ns=\"ns\"}");
    assert_eq!(query.headers[0].value, "Bearer *****");
    assert!(matches!(prepare(&run.spec, &run.metadata, &Default::default()), Err(Invalid::Arguments(_))));
}
