//! Rollouts decided by analysis, end to end: a canary step's AnalysisRun gates its step, a
//! background run watches the whole update, and a failed run aborts it automatically, with the
//! traffic back on the stable pods; against a real Prometheus per test (fed exact samples or
//! growing counters), a local stand-in for Flagger's load tester, and the kubectl plugin for
//! people's actions.
//!
//! - `examples`: the examples of `examples/analysis/`, once healthy and once not;
//!   `queries`: their PromQL against the same feeds, with no cluster;
//! - `steps`: a step's analysis succeeding, failing, inconclusive, retried;
//! - `lifecycle`: background failure, promote --full, a new revision, a controller restart.

mod examples;
mod fixture;
mod lifecycle;
mod queries;
mod steps;
mod support;
