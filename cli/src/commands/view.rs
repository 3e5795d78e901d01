//! `get`, `list` and `status`, once or watching.

use std::pin::pin;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use rollouts_controller::api::Rollout;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::print;
use crate::client::{Cluster, Request, Verb, explain, list_visible, status_code};
use crate::family::{Family, replica_sets_of};
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

fn encode<T: Serialize>(value: &T, format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => serde_saphyr::to_string(value)?,
    })
}

/// Changes of one rollout; a watch the user may not make ends it with an error.
fn watch_rollout(cluster: &Cluster, name: &str) -> impl Stream<Item = Result<Rollout>> + use<> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let namespace = cluster.namespace.clone();
    watcher(cluster.rollouts(), config).default_backoff().applied_objects().filter_map(move |event| {
        let outcome = match event {
            Ok(rollout) => Some(Ok(rollout)),
            Err(watcher::Error::InitialListFailed(error) | watcher::Error::WatchStartFailed(error))
                if matches!(status_code(&error), Some(401 | 403)) =>
            {
                let request = Request::new(Verb::Watch, "rollouts", None, Some(&namespace));
                Some(Err(explain(error, request)))
            }
            // Anything else is transient: the watcher retries with a backoff.
            Err(_) => None,
        };
        std::future::ready(outcome)
    })
}

/// Terminal codes that put `frame` on the screen: the first frame clears it; later ones overwrite
/// line by line (clearing what each old line had beyond the new one), which doesn't flicker.
fn redraw(frame: &str, first: bool) -> String {
    let clear = if first { "\x1b[2J" } else { "" };
    format!("\x1b[H{clear}{}\x1b[J", frame.replace('\n', "\x1b[K\n"))
}

/// Resolves when `deadline` passes; never without one.
async fn deadline_passed(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.filter(|t| !t.is_zero()).map(|t| Instant::now() + t)
}

/// Successive frames of `get --watch` on stdout.
struct WatchOutput {
    screen: Screen,
    printed_any: bool,
    /// Without a terminal: the last state printed, rendered at a fixed time so that ages and
    /// countdowns ticking don't count as changes.
    last_state: Option<String>,
}

impl WatchOutput {
    fn show(&mut self, rollout: &Rollout, family: &Family) -> Result<()> {
        let frame = render_get(rollout, family, Timestamp::now(), self.screen.style);
        if self.screen.terminal {
            print(&redraw(&frame, !self.printed_any))?;
        } else {
            let state = render_get(rollout, family, Timestamp::UNIX_EPOCH, Style::PLAIN);
            if self.last_state.as_ref() == Some(&state) {
                return Ok(());
            }
            let separator = if self.printed_any { "\n" } else { "" };
            print(&format!("{separator}{frame}"))?;
            self.last_state = Some(state);
        }
        self.printed_any = true;
        Ok(())
    }
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
    let mut changes = pin!(watch_rollout(cluster, name));
    // Made once, so a Ctrl-C that comes while a frame is being drawn is not missed.
    let mut interrupted = pin!(tokio::signal::ctrl_c());
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let deadline = deadline_after(timeout);
    let mut rollout = rollout;
    let mut frames = WatchOutput { screen, printed_any: false, last_state: None };
    loop {
        let family = cluster.family(&rollout).await?;
        frames.show(&rollout, &family)?;
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = deadline_passed(deadline) => return Ok(()),
            change = changes.next() => match change {
                Some(change) => rollout = change?,
                None => return Ok(()),
            },
            _ = ticker.tick() => {}
        }
    }
}

pub async fn list(cluster: &Cluster, all_namespaces: bool, output: Option<OutputFormat>, screen: Screen) -> Result<()> {
    let namespace = (!all_namespaces).then_some(cluster.namespace.as_str());
    let api: Api<Rollout> = match namespace {
        Some(namespace) => Api::namespaced(cluster.client.clone(), namespace),
        None => Api::all(cluster.client.clone()),
    };
    let request = Request::new(Verb::List, "rollouts", None, namespace);
    let rollouts = api.list(&ListParams::default()).await.map_err(|error| explain(error, request))?.items;
    if let Some(format) = output {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": rollouts});
        return print(&encode(&list, format)?);
    }
    if rollouts.is_empty() {
        let scope = namespace.map_or_else(|| "any namespace".to_string(), |ns| format!("namespace \"{ns}\""));
        eprintln!("No rollouts found in {scope}.");
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
    let mut changes = pin!(watch_rollout(cluster, name));
    let mut interrupted = pin!(tokio::signal::ctrl_c());
    let deadline = deadline_after(timeout);
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
        tokio::select! {
            _ = &mut interrupted => bail!("Rollout status watch interrupted"),
            _ = deadline_passed(deadline) => bail!("Rollout status watch exceeded timeout"),
            change = changes.next() => match change {
                Some(change) => rollout = change?,
                None => return Err(anyhow!("the watch of rollout \"{name}\" ended")),
            },
        }
    }
}
