//! The leader's second loop: AnalysisRuns, reconciled beside the Rollouts under the same Lease,
//! from the store their watch keeps (`run_store.rs`, filled in `watches.rs` whether or not this
//! process leads).

use std::sync::Arc;

use futures::{StreamExt, stream};
use kube::runtime::Controller;
use kube::runtime::watcher;
use tokio::sync::watch;

use crate::analysis::reconcile::{self, Analysis};
use crate::api::AnalysisRun;

use super::Options;

/// Reconciles AnalysisRuns until `stopping` turns true (finishing what is in flight): every run
/// once at the start of the term, then each that changes or is due.
pub async fn run(analysis: Arc<Analysis>, options: &Options, mut stopping: watch::Receiver<bool>) {
    let runs = &analysis.ctx.analysis_runs;
    // The watch's events come through `requests`, not through a stream of the Controller's own.
    let no_watch = stream::pending::<Result<AnalysisRun, watcher::Error>>();
    let graceful = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Controller::for_stream(no_watch, runs.reader())
        .with_config(kube::runtime::controller::Config::default().concurrency(options.analysis_concurrency))
        .reconcile_on(runs.requests())
        .graceful_shutdown_on(graceful)
        .run(reconcile::reconcile, reconcile::error_policy, analysis.clone())
        .for_each(|_| futures::future::ready(()))
        .await;
}
