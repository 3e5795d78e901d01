//! The analysis engine: AnalysisRuns measured by providers and judged by conditions.
//!
//! Like a Rollout's reconcile, one reconcile of a run is pure where it decides and small where it
//! acts: `plan::start` says which measurements are due at `now` (`schedule.rs`) from metrics made
//! ready by `metric.rs` (arguments from `args.rs`, conditions from `condition/`); the reconciler
//! (`reconcile.rs`) takes them through `providers/`; `plan::finish` counts them in (`assess.rs`,
//! judged by `evaluate.rs`) and says when to look again. A provider is a file of its own.

pub mod args;
pub mod assess;
pub mod condition;
pub mod evaluate;
pub mod metric;
pub mod plan;
pub mod providers;
pub mod reconcile;
pub mod schedule;
pub mod templates;

#[cfg(test)]
mod tests;
