//! Following one object with `--watch`: its changes, Ctrl-C, `--timeout`, and the frames drawn.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::{Instant, Interval};

use super::{Screen, print};
use crate::client::{Cluster, Object, Request, Verb, explain, resource_of, status_code};
use crate::render::Style;

/// Changes of the object `name`; a watch the user may not make ends it with an error.
fn changes<K: Object>(cluster: &Cluster, name: &str) -> impl Stream<Item = Result<K>> + Send + use<K> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let namespace = cluster.namespace.clone();
    watcher(cluster.api::<K>(), config).default_backoff().applied_objects().filter_map(move |event| {
        let outcome = match event {
            Ok(object) => Some(Ok(object)),
            Err(watcher::Error::InitialListFailed(error) | watcher::Error::WatchStartFailed(error))
                if matches!(status_code(&error), Some(401 | 403)) =>
            {
                let resource = resource_of::<K>();
                Some(Err(explain(error, Request::new(Verb::Watch, &resource, None, Some(&namespace)))))
            }
            // Anything else is transient: the watcher retries with a backoff.
            Err(_) => None,
        };
        std::future::ready(outcome)
    })
}

/// What ended a wait of [`Follow::next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// The object changed (and was updated in place).
    Changed,
    /// A second passed: ages and countdowns on screen moved.
    Tick,
    Interrupted,
    TimedOut,
    /// The watch stream ended.
    Ended,
}

/// Waits on one object's changes, Ctrl-C, an optional deadline and an optional ticker.
pub(super) struct Follow<K> {
    changes: Pin<Box<dyn Stream<Item = Result<K>> + Send>>,
    interrupted: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>,
    ticker: Option<Interval>,
    deadline: Option<Instant>,
}

impl<K: Object> Follow<K> {
    /// `timeout` 0 or `None`: no deadline. `tick`: wake every second to redraw.
    pub(super) fn new(cluster: &Cluster, name: &str, timeout: Option<Duration>, tick: bool) -> Self {
        Follow {
            changes: Box::pin(changes(cluster, name)),
            // Made once, so a Ctrl-C that comes while a frame is being drawn is not missed.
            interrupted: Box::pin(tokio::signal::ctrl_c()),
            ticker: tick.then(|| tokio::time::interval(Duration::from_secs(1))),
            deadline: timeout.filter(|t| !t.is_zero()).map(|t| Instant::now() + t),
        }
    }

    /// Waits for the next thing that happens; on a change, `object` becomes the new version.
    pub(super) async fn next(&mut self, object: &mut K) -> Result<Wake> {
        let deadline = self.deadline;
        let ticker = &mut self.ticker;
        tokio::select! {
            _ = &mut self.interrupted => Ok(Wake::Interrupted),
            _ = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => Ok(Wake::TimedOut),
            change = self.changes.next() => match change {
                Some(change) => {
                    *object = change?;
                    Ok(Wake::Changed)
                }
                None => Ok(Wake::Ended),
            },
            _ = async {
                match ticker {
                    Some(ticker) => ticker.tick().await,
                    None => std::future::pending().await,
                }
            } => Ok(Wake::Tick),
        }
    }
}

/// Terminal codes that put `frame` on the screen: the first frame clears it; later ones overwrite
/// line by line (clearing what each old line had beyond the new one), which doesn't flicker.
fn redraw(frame: &str, first: bool) -> String {
    let clear = if first { "\x1b[2J" } else { "" };
    format!("\x1b[H{clear}{}\x1b[J", frame.replace('\n', "\x1b[K\n"))
}

/// Successive frames of `get --watch` on stdout.
pub(super) struct Frames {
    screen: Screen,
    printed_any: bool,
    /// Without a terminal: the last state printed, rendered at a fixed time so that ages and
    /// countdowns ticking don't count as changes.
    last_state: Option<String>,
}

impl Frames {
    pub(super) fn new(screen: Screen) -> Self {
        Frames { screen, printed_any: false, last_state: None }
    }

    /// Draws what `render(now, style)` returns: in place on a terminal, else after a blank line
    /// when the state changed.
    pub(super) fn show(&mut self, render: impl Fn(Timestamp, Style) -> String) -> Result<()> {
        let frame = render(Timestamp::now(), self.screen.style);
        if self.screen.terminal {
            print(&redraw(&frame, !self.printed_any))?;
        } else {
            let state = render(Timestamp::UNIX_EPOCH, Style::PLAIN);
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
