//! `get analysisrun` and `list analysisruns`, once or watching.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::jiff::Timestamp;
use rollouts_controller::api::AnalysisRun;

use super::print;
use super::view::{OutputFormat, Screen, encode, printed_without_table};
use super::watch::{Follow, Frames, Wake};
use crate::client::Cluster;
use crate::render::{render_analysis_run, render_analysis_runs};

fn completed(run: &AnalysisRun) -> bool {
    run.status.as_ref().is_some_and(|s| s.phase.completed())
}

/// With `watch`, redraws on every change until the run completes, Ctrl-C or `timeout`.
pub async fn get_analysis_run(
    cluster: &Cluster,
    name: &str,
    output: Option<OutputFormat>,
    watch: bool,
    timeout: Option<Duration>,
    screen: Screen,
) -> Result<()> {
    let run: AnalysisRun = cluster.get(name).await?;
    if let Some(format) = output {
        return print(&encode(&run, format)?);
    }
    if !watch {
        return print(&render_analysis_run(&run, Timestamp::now(), screen.style));
    }
    let mut follow = Follow::new(cluster, name, timeout, true);
    let mut frames = Frames::new(screen);
    let mut run = run;
    loop {
        frames.show(|now, style| render_analysis_run(&run, now, style))?;
        // A completed run takes no more measurements: its last frame is final.
        if completed(&run) {
            return Ok(());
        }
        match follow.next(&mut run).await? {
            Wake::Changed | Wake::Tick => {}
            Wake::Interrupted | Wake::TimedOut | Wake::Ended => return Ok(()),
        }
    }
}

pub async fn list_analysis_runs(
    cluster: &Cluster,
    all_namespaces: bool,
    output: Option<OutputFormat>,
    screen: Screen,
) -> Result<()> {
    let namespace = (!all_namespaces).then_some(cluster.namespace.as_str());
    let runs: Vec<AnalysisRun> = cluster.list(all_namespaces).await?;
    if printed_without_table(&runs, "analysisruns", namespace, output)? {
        return Ok(());
    }
    print(&render_analysis_runs(&runs, all_namespaces, Timestamp::now(), screen.style))
}
