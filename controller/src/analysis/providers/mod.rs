//! Metric providers: each takes a measurement from a prepared metric. They are the only part of
//! the analysis engine that talks to the network; what a measurement means is decided in
//! `evaluate.rs` and `assess.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use super::condition::Value;
use super::evaluate::{judge, shown};
use super::metric::Prepared;
use crate::api::{AnalysisPhase, AnalysisRun, Measurement};

pub mod job;
pub mod prometheus;
pub mod web;

/// What every provider needs: the Kubernetes client (for Jobs) and HTTP clients.
#[derive(Clone)]
pub struct Providers {
    pub kube: kube::Client,
    http: reqwest::Client,
    /// For metrics that ask to skip TLS verification (`insecure: true`).
    insecure_http: reqwest::Client,
}

impl Providers {
    pub fn new(kube: kube::Client) -> Result<Self, reqwest::Error> {
        // reqwest is built without a TLS crypto provider of its own: use ring, as kube does. Only
        // the first install counts, so a second controller in one process finds it installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http =
            || reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).user_agent("rollouts-controller");
        Ok(Providers { kube, http: http().build()?, insecure_http: http().danger_accept_invalid_certs(true).build()? })
    }

    fn http(&self, insecure: bool) -> &reqwest::Client {
        if insecure { &self.insecure_http } else { &self.http }
    }

    /// A new measurement of `prepared`, started at `now`.
    pub async fn measure(&self, run: &AnalysisRun, prepared: &Prepared, now: Timestamp) -> Measurement {
        let provider = &prepared.metric.provider;
        let answer = if let Some(query) = &provider.prometheus {
            prometheus::query(self.http(query.insecure), query).await
        } else if let Some(web) = &provider.web {
            web::call(self.http(web.insecure), web).await
        } else if let Some(job) = &provider.job {
            return job::start(&self.kube, run, prepared, job, now).await;
        } else {
            Err(format!("provider {} is not supported by this controller yet", prepared.provider))
        };
        match answer {
            Ok(Answer { value, metadata }) => {
                let (phase, message) = judge(prepared, &value);
                Measurement { value: Some(shown(&value)), metadata, ..finished(now, phase, message) }
            }
            Err(message) => finished(now, AnalysisPhase::Error, Some(message)),
        }
    }
}

/// A provider's answer: the value the conditions judge, and what to record beside it.
pub struct Answer {
    pub value: Value,
    pub metadata: BTreeMap<String, String>,
}

/// A measurement that started at `started` and is over.
pub fn finished(started: Timestamp, phase: AnalysisPhase, message: Option<String>) -> Measurement {
    Measurement {
        phase,
        message,
        started_at: Some(MicroTime(started)),
        finished_at: Some(MicroTime(Timestamp::now().max(started))),
        ..Default::default()
    }
}

/// Waits at most `seconds` for a request (`default` when unset or 0, as upstream).
fn timeout(seconds: Option<i64>, default: u64) -> Duration {
    Duration::from_secs(seconds.and_then(|s| u64::try_from(s).ok()).filter(|s| *s > 0).unwrap_or(default))
}

/// A request error in a few words, with the cause (connection refused, timed out, ...).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
