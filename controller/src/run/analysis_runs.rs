//! The leader's second loop: AnalysisRuns, reconciled beside the Rollouts under the same Lease.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use crate::analysis::reconcile::{self, Analysis};
use crate::api::AnalysisRun;

use super::{Options, instance_selector, scoped_api};

/// Reconciles AnalysisRuns until `stopping` turns true (finishing what is in flight).
pub async fn run(analysis: Arc<Analysis>, options: &Options, mut stopping: watch::Receiver<bool>) {
    let runs: Api<AnalysisRun> = scoped_api(&analysis.ctx.client, &options.settings);
    let (reader, writer) = reflector::store();
    let forget = analysis.clone();
    let stream = watcher::watcher(runs, watcher::Config::default().labels(&instance_selector(&options.settings)))
        .default_backoff()
        .modify(|run: &mut AnalysisRun| run.meta_mut().managed_fields = None)
        .reflect(writer)
        .inspect_ok(move |event| {
            if let Event::Delete(run) = event {
                tracing::debug!(name = %run.name_any(), "analysis run deleted");
                forget.forget(run);
            }
        })
        .applied_objects();
    let graceful = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Controller::for_stream(stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(options.analysis_concurrency))
        .graceful_shutdown_on(graceful)
        .run(reconcile::reconcile, reconcile::error_policy, analysis)
        .for_each(|_| futures::future::ready(()))
        .await;
}
