//! A run's metrics made ready to measure: arguments filled in, durations, counts and limits read,
//! conditions compiled, dry-run and retention rules matched. Everything wrong with a run is found
//! here, before its first measurement, with the field and the reason.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use regex::Regex;

use super::args::{self, Secrets};
use super::condition::Condition;
use crate::api::{AnalysisRunSpec, Metric, parse_go_duration};

/// Measurements kept per metric unless a retention rule says otherwise.
pub const DEFAULT_RETENTION: usize = 10;
/// The shortest interval: anything shorter would measure (and write) in a tight loop.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Errors in a row tolerated unless the metric says otherwise.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i64 = 4;

/// How many measurements a metric takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Bounded(i64),
    /// An interval without a count: measure until the run is terminated.
    Unbounded,
}

/// One metric, ready to measure.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The metric with its arguments filled in.
    pub metric: Metric,
    pub provider: String,
    pub interval: Option<Duration>,
    pub initial_delay: Duration,
    pub count: Count,
    /// None when disabled (-1).
    pub failure_limit: Option<i64>,
    pub inconclusive_limit: i64,
    pub consecutive_error_limit: i64,
    /// 0 when off.
    pub consecutive_success_limit: i64,
    pub success: Option<Condition>,
    pub failure: Option<Condition>,
    pub dry_run: bool,
    pub retention: usize,
}

/// Why a run can't be measured: its status message says which.
#[derive(Clone, Debug, PartialEq)]
pub enum Invalid {
    Arguments(String),
    Spec(String),
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Arguments(reason) => write!(f, "Unable to resolve metric arguments: {reason}"),
            Invalid::Spec(reason) => write!(f, "Analysis spec invalid: {reason}"),
        }
    }
}

/// Every metric of `spec`, ready, or the first thing wrong with them.
pub fn prepare(spec: &AnalysisRunSpec, run: &ObjectMeta, secrets: &Secrets) -> Result<Vec<Prepared>, Invalid> {
    if spec.metrics.is_empty() {
        return Err(Invalid::Spec("no metrics specified".into()));
    }
    let values = args::resolve(&spec.args, run, secrets).map_err(Invalid::Arguments)?;
    let dry_run = rules("dryRun", spec.dry_run.iter().map(|rule| (&rule.metric_name, 0)), &spec.metrics)?;
    let retention = rules(
        "measurementRetention",
        spec.measurement_retention.iter().map(|rule| (&rule.metric_name, rule.limit)),
        &spec.metrics,
    )?;
    let mut names = BTreeSet::new();
    spec.metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            if !names.insert(metric.name.as_str()) {
                return Err(Invalid::Spec(format!("metrics[{index}]: duplicate name '{}'", metric.name)));
            }
            let filled = args::fill(metric, &values).map_err(Invalid::Arguments)?;
            let mut prepared =
                prepare_metric(filled).map_err(|reason| Invalid::Spec(format!("metrics[{index}]: {reason}")))?;
            prepared.dry_run = dry_run.iter().any(|(rule, _)| rule.is_match(&metric.name));
            if let Some((_, limit)) = retention.iter().find(|(rule, limit)| *limit > 0 && rule.is_match(&metric.name)) {
                prepared.retention = usize::try_from(*limit).unwrap_or(DEFAULT_RETENTION);
            }
            Ok(prepared)
        })
        .collect()
}

/// Compiles the name patterns of dry-run or retention rules; each must match some metric.
/// Patterns are searched, not anchored, as upstream does (`.*` matches every metric).
fn rules<'a>(
    field: &str,
    rules: impl Iterator<Item = (&'a String, i32)>,
    metrics: &[Metric],
) -> Result<Vec<(Regex, i32)>, Invalid> {
    rules
        .enumerate()
        .map(|(index, (pattern, limit))| {
            let regex = Regex::new(pattern).map_err(|error| {
                Invalid::Spec(format!("{field}[{index}]: metricName {pattern:?} is not a regular expression: {error}"))
            })?;
            if !metrics.iter().any(|metric| regex.is_match(&metric.name)) {
                return Err(Invalid::Spec(format!("{field}[{index}]: Rule didn't match any metric name(s)")));
            }
            Ok((regex, limit))
        })
        .collect()
}

fn number(field: &str, value: &Option<IntOrString>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(None),
        Some(IntOrString::Int(number)) => Ok(Some(i64::from(*number))),
        Some(IntOrString::String(text)) => {
            text.trim().parse().map(Some).map_err(|_| format!("{field}: {text:?} is not a whole number"))
        }
    }
}

fn duration(field: &str, value: &Option<String>) -> Result<Option<Duration>, String> {
    value
        .as_deref()
        .map(|text| {
            parse_go_duration(text)
                .ok_or_else(|| format!("invalid {field} string: {text:?} is not a duration such as 30s, 5m or 1h30m"))
        })
        .transpose()
}

fn condition(field: &str, source: &Option<String>) -> Result<Option<Condition>, String> {
    source
        .as_deref()
        .map(|source| Condition::compile(source).map_err(|error| format!("{field} {source:?}: {error}")))
        .transpose()
}

fn prepare_metric(metric: Metric) -> Result<Prepared, String> {
    let provider = metric.provider.name().map_err(str::to_string)?;
    if !matches!(provider.as_str(), "prometheus" | "web" | "job") {
        return Err(format!("provider {provider} is not supported by this controller yet"));
    }
    let interval = duration("interval", &metric.interval)?;
    let initial_delay = duration("initialDelay", &metric.initial_delay)?.unwrap_or_default();
    let count = number("count", &metric.count)?.unwrap_or(0);
    let failure_limit = number("failureLimit", &metric.failure_limit)?.unwrap_or(0);
    let inconclusive_limit = number("inconclusiveLimit", &metric.inconclusive_limit)?.unwrap_or(0);
    let consecutive_error_limit =
        number("consecutiveErrorLimit", &metric.consecutive_error_limit)?.unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT);
    let consecutive_success_limit = number("consecutiveSuccessLimit", &metric.consecutive_success_limit)?.unwrap_or(0);
    if count < 0 {
        return Err("count must be >= 0".into());
    }
    if consecutive_success_limit < 0 {
        return Err("consecutiveSuccessLimit must be >= 0".into());
    }
    if failure_limit < -1 {
        return Err("failureLimit must be >= 0, or -1 to be disabled".into());
    }
    if failure_limit == -1 && consecutive_success_limit == 0 {
        return Err("failureLimit and consecutiveSuccessLimit cannot both be disabled".into());
    }
    if inconclusive_limit < 0 {
        return Err("inconclusiveLimit must be >= 0".into());
    }
    if consecutive_error_limit < 0 {
        return Err("consecutiveErrorLimit must be >= 0".into());
    }
    if interval.is_some_and(|interval| interval < MIN_INTERVAL) {
        return Err("interval must be at least 1s".into());
    }
    if count > 1 && interval.is_none() {
        return Err("interval must be specified when count > 1".into());
    }
    if count > 0 && failure_limit >= 0 && count < failure_limit + consecutive_success_limit {
        return Err(format!(
            "count ({count}) must be >= failureLimit + consecutiveSuccessLimit ({failure_limit} + {consecutive_success_limit}) if both >= 0"
        ));
    }
    if count > 0 && count < inconclusive_limit {
        return Err("count must be >= inconclusiveLimit".into());
    }
    let count = match (count, interval) {
        (0, None) => Count::Bounded(1),
        (0, Some(_)) => Count::Unbounded,
        (count, _) => Count::Bounded(count),
    };
    Ok(Prepared {
        success: condition("successCondition", &metric.success_condition)?,
        failure: condition("failureCondition", &metric.failure_condition)?,
        metric,
        provider,
        interval,
        initial_delay,
        count,
        failure_limit: (failure_limit >= 0).then_some(failure_limit),
        inconclusive_limit,
        consecutive_error_limit,
        consecutive_success_limit,
        dry_run: false,
        retention: DEFAULT_RETENTION,
    })
}
