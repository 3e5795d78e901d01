//! `get`, `list` and `status`, once or watching.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use rollouts_controller::api::Rollout;
use serde::Serialize;
use serde_json::json;

use super::print;
use super::watch::{Follow, Frames, Wake};
use crate::client::{Cluster, list_visible};
use crate::family::replica_sets_of;
use crate::phase::{Phase, client_phase};
use crate::render::{Style, Summary, render_get, render_list};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

/// How to draw: decorations, and whether stdout is a terminal that can be redrawn.
#[derive(Clone, Copy, Debug)]
pub struct Screen {
    pub style: Style,
    pub terminal: bool,
}

pub(super) fn encode<T: Serialize>(value: &T, format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => serde_saphyr::to_string(value)?,
    })
}

/// What `list` prints instead of a table: the objects (`-o`), or on stderr that there are none.
/// `true` when that was all there is to print.
pub(super) fn printed_without_table<K: Serialize>(
    items: &[K],
    what: &str,
    namespace: Option<&str>,
    output: Option<OutputFormat>,
) -> Result<bool> {
    if let Some(format) = output {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
        print(&encode(&list, format)?)?;
        return Ok(true);
    }
    if items.is_empty() {
        let scope = namespace.map_or_else(|| "any namespace".to_string(), |ns| format!("namespace \"{ns}\""));
        eprintln!("No {what} found in {scope}.");
        return Ok(true);
    }
    Ok(false)
}

pub async fn get(
    cluster: &Cluster,
    name: &str,
    output: Option<OutputFormat>,
    watch: bool,
    timeout: Option<Duration>,
    screen: Screen,
) -> Result<()> {
    let rollout = cluster.rollout(name).await?;
    if let Some(format) = output {
        return print(&encode(&rollout, format)?);
    }
    if !watch {
        let family = cluster.family(&rollout).await?;
        return print(&render_get(&rollout, &family, Timestamp::now(), screen.style));
    }
    let mut follow = Follow::new(cluster, name, timeout, true);
    let mut frames = Frames::new(screen);
    let mut rollout = rollout;
    loop {
        let family = cluster.family(&rollout).await?;
        frames.show(|now, style| render_get(&rollout, &family, now, style))?;
        match follow.next(&mut rollout).await? {
            Wake::Changed | Wake::Tick => {}
            Wake::Interrupted | Wake::TimedOut | Wake::Ended => return Ok(()),
        }
    }
}

pub async fn list(cluster: &Cluster, all_namespaces: bool, output: Option<OutputFormat>, screen: Screen) -> Result<()> {
    let namespace = (!all_namespaces).then_some(cluster.namespace.as_str());
    let rollouts: Vec<Rollout> = cluster.list(all_namespaces).await?;
    if printed_without_table(&rollouts, "rollouts", namespace, output)? {
        return Ok(());
    }
    // The actual weight of a basic canary needs its ReplicaSets: shown as "-" if not allowed.
    let replica_sets = list_visible::<ReplicaSet>(&cluster.client, namespace, "replicasets").await?;
    let now = Timestamp::now();
    let summaries: Vec<Summary> = rollouts
        .iter()
        .map(|rollout| {
            let own = replica_sets.items().map(|all| replica_sets_of(rollout, all));
            Summary::of(rollout, own.as_deref(), None, now)
        })
        .collect();
    print(&render_list(&summaries, all_namespaces, screen.style))
}

pub async fn status(cluster: &Cluster, name: &str, watch: bool, timeout: Option<Duration>) -> Result<()> {
    let rollout = cluster.rollout(name).await?;
    if !watch {
        return print(&format!("{}\n", client_phase(&rollout, cluster.workload_generation(&rollout).await)));
    }
    let mut follow = Follow::new(cluster, name, timeout, false);
    let mut rollout = rollout;
    let mut last_line = String::new();
    loop {
        let info = client_phase(&rollout, cluster.workload_generation(&rollout).await);
        let line = info.to_string();
        if line != last_line {
            print(&format!("{line}\n"))?;
            last_line = line;
        }
        match info.phase {
            Phase::Healthy => return Ok(()),
            Phase::Degraded => bail!("The rollout is in a degraded state with message: {}", info.message),
            _ => {}
        }
        match follow.next(&mut rollout).await? {
            Wake::Changed | Wake::Tick => {}
            Wake::Interrupted => bail!("Rollout status watch interrupted"),
            Wake::TimedOut => bail!("Rollout status watch exceeded timeout"),
            Wake::Ended => return Err(anyhow!("the watch of rollout \"{name}\" ended")),
        }
    }
}
