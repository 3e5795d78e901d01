//! The pure part of one reconcile of an AnalysisRun: what to measure at `now` (`start`), and the
//! status, Events and next look once the measurements are in (`finish`). No client, no clock.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

use super::args::Secrets;
use super::assess::{assess, record, terminating};
use super::metric::{Invalid, Prepared, prepare};
use super::schedule::{Due, Schedule, Task, later, schedule};
use crate::api::{AnalysisPhase, AnalysisRun, AnalysisRunStatus, Measurement, MetricResult};
use crate::plan::Event;

/// A run that still measures.
#[derive(Clone, Debug)]
pub struct Measuring {
    /// The status to build on: started, with a result for every metric.
    pub status: AnalysisRunStatus,
    /// The metrics, with secrets masked.
    pub metrics: Vec<Prepared>,
    pub schedule: Schedule,
}

#[derive(Clone, Debug)]
pub enum Start {
    /// Completed: delete it at `expires_at` (its ttlStrategy), if ever.
    Completed {
        expires_at: Option<Timestamp>,
    },
    /// Its spec is wrong: it ends in Error.
    Invalid(Finished),
    Measuring(Measuring),
}

/// What the reconcile writes once the due measurements are taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub status: AnalysisRunStatus,
    pub events: Vec<Event>,
    pub requeue_at: Option<Timestamp>,
}

pub fn start(run: &AnalysisRun, now: Timestamp) -> Start {
    let mut status = run.status.clone().unwrap_or_default();
    if status.phase.completed() {
        return Start::Completed { expires_at: expires_at(run, &status) };
    }
    let started = status.started_at.get_or_insert(MicroTime(now)).0;
    let metrics = match prepare(&run.spec, &run.metadata, &Secrets::Masked) {
        Ok(metrics) => metrics,
        Err(invalid) => return Start::Invalid(errored(status, &invalid, now)),
    };
    for prepared in &metrics {
        if !status.metric_results.iter().any(|result| result.name == prepared.metric.name) {
            status.metric_results.push(MetricResult { name: prepared.metric.name.clone(), ..Default::default() });
        }
    }
    status.phase = AnalysisPhase::Running;
    let terminating = terminating(run.spec.terminate, &metrics, &status);
    let schedule = schedule(&metrics, &status, started, now, terminating);
    Start::Measuring(Measuring { status, metrics, schedule })
}

/// The run ends in Error because of `invalid`.
pub fn errored(mut status: AnalysisRunStatus, invalid: &Invalid, now: Timestamp) -> Finished {
    status.phase = AnalysisPhase::Error;
    status.message = Some(invalid.to_string());
    status.completed_at = Some(Time(now));
    let events = vec![Event {
        warning: true,
        reason: "AnalysisRunError",
        message: format!("Analysis Completed. Result: Error ({invalid})"),
    }];
    Finished { status, events, requeue_at: None }
}

/// When a completed run's ttlStrategy deletes it.
fn expires_at(run: &AnalysisRun, status: &AnalysisRunStatus) -> Option<Timestamp> {
    let ttl = run.spec.ttl_strategy.as_ref()?;
    let specific = match status.phase {
        AnalysisPhase::Successful => ttl.seconds_after_success,
        AnalysisPhase::Failed => ttl.seconds_after_failure,
        _ => None,
    };
    let seconds = specific.or(ttl.seconds_after_completion)?;
    let completed = status.completed_at.as_ref()?.0;
    Some(later(completed, Duration::from_secs(u64::try_from(seconds).unwrap_or(0))))
}

/// The status after `measured` (each due task with the measurement it produced).
pub fn finish(run: &AnalysisRun, measuring: Measuring, measured: Vec<(Due, Measurement)>, now: Timestamp) -> Finished {
    let Measuring { mut status, metrics, .. } = measuring;
    for (due, measurement) in measured {
        let prepared = &metrics[due.metric];
        if let Some(result) = status.metric_results.iter_mut().find(|r| r.name == prepared.metric.name) {
            record(result, measurement, due.task != Task::Measure, prepared.retention);
        }
    }
    let events = assess(&metrics, &mut status, run.spec.terminate, now);
    let requeue_at = if status.phase.completed() {
        expires_at(run, &status)
    } else {
        let started = status.started_at.as_ref().map_or(now, |time| time.0);
        let terminating = terminating(run.spec.terminate, &metrics, &status);
        let next = schedule(&metrics, &status, started, now, terminating);
        // A metric that ended badly stops its siblings: at once, not at their next measurement.
        if next.due.is_empty() { next.next } else { Some(now) }
    };
    Finished { status, events, requeue_at }
}
