//! Which measurements are due at `now`, and when the next one is.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::metric::{Count, Prepared};
use crate::api::{AnalysisPhase, AnalysisRunStatus, Measurement, MetricResult};

/// After an Error, or for a metric without an interval, the next try comes this much later.
pub const ERROR_RETRY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Take a new measurement.
    Measure,
    /// Look again at the in-flight one (a Job still running).
    Resume,
    /// Stop the in-flight one: the run is terminating.
    Terminate,
}

/// A task for metric `metric` (an index into the prepared metrics), due since `due_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub metric: usize,
    pub task: Task,
    pub due_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    pub due: Vec<Due>,
    /// When the earliest task that isn't due yet is.
    pub next: Option<Timestamp>,
}

pub fn later(at: Timestamp, by: Duration) -> Timestamp {
    at.checked_add(by).unwrap_or(Timestamp::MAX)
}

pub fn result_of<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a MetricResult> {
    status.metric_results.iter().find(|result| result.name == name)
}

/// The measurements due at `now` for a run that started at `started`.
pub fn schedule(
    metrics: &[Prepared],
    status: &AnalysisRunStatus,
    started: Timestamp,
    now: Timestamp,
    terminating: bool,
) -> Schedule {
    let mut schedule = Schedule::default();
    for (index, prepared) in metrics.iter().enumerate() {
        let result = result_of(status, &prepared.metric.name);
        if result.is_some_and(|result| result.phase.completed()) {
            continue;
        }
        let Some((task, at)) = next_task(prepared, result, started, terminating) else { continue };
        if at <= now {
            schedule.due.push(Due { metric: index, task, due_at: at });
        } else {
            schedule.next = Some(schedule.next.map_or(at, |next| next.min(at)));
        }
    }
    schedule
}

fn finished(measurement: &Measurement) -> Option<Timestamp> {
    measurement.finished_at.as_ref().map(|time| time.0)
}

/// The next task of one metric and when it is due, if it has one.
fn next_task(
    prepared: &Prepared,
    result: Option<&MetricResult>,
    started: Timestamp,
    terminating: bool,
) -> Option<(Task, Timestamp)> {
    let last = result.and_then(|result| result.measurements.last());
    if let Some(last) = last.filter(|last| last.finished_at.is_none()) {
        if terminating {
            return Some((Task::Terminate, started));
        }
        return Some((Task::Resume, last.resume_at.as_ref().map_or(started, |time| time.0)));
    }
    if terminating {
        return None;
    }
    let taken = i64::from(result.map_or(0, |result| result.count));
    if matches!(prepared.count, Count::Bounded(count) if taken >= count) {
        return None;
    }
    let Some(last_finished) = last.and_then(finished) else {
        return Some((Task::Measure, later(started, prepared.initial_delay)));
    };
    let wait = match (last.map(|last| last.phase), prepared.interval) {
        (Some(AnalysisPhase::Error), _) | (_, None) => ERROR_RETRY,
        (_, Some(interval)) => interval,
    };
    Some((Task::Measure, later(last_finished, wait)))
}
