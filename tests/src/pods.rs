//! Ready pods followed on a watch, so a short dip that a poll would miss is seen.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher;
use tokio::task::JoinHandle;

use crate::TestNamespace;

/// What the watch has seen: the pods ready now, and the fewest ready at any moment since it
/// listed them.
#[derive(Debug, Default)]
struct Seen {
    ready: BTreeSet<String>,
    fewest: Option<usize>,
}

pub struct ReadyPods {
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<Result<()>>,
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl TestNamespace {
    /// Follows the ready pods that `selector` (a label selector) picks.
    pub async fn watch_ready_pods(&self, selector: &str) -> Result<ReadyPods> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (listed, is_listed) = tokio::sync::oneshot::channel();
        let mut events = Box::pin(watcher::watcher(self.api::<Pod>(), watcher::Config::default().labels(selector)));
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            let mut listed = Some(listed);
            let mut initial = BTreeSet::new();
            while let Some(event) = events.try_next().await? {
                let mut seen = recorded.lock().expect("ready pods lock");
                match event {
                    watcher::Event::Init => initial.clear(),
                    watcher::Event::InitApply(pod) => {
                        if is_ready(&pod) {
                            initial.insert(pod.name_any());
                        }
                    }
                    // A re-list replaces the set at once.
                    watcher::Event::InitDone => {
                        seen.ready = std::mem::take(&mut initial);
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                    }
                    watcher::Event::Apply(pod) if is_ready(&pod) => {
                        seen.ready.insert(pod.name_any());
                    }
                    watcher::Event::Apply(pod) | watcher::Event::Delete(pod) => {
                        seen.ready.remove(&pod.name_any());
                    }
                }
                if listed.is_none() {
                    let count = seen.ready.len();
                    seen.fewest = Some(seen.fewest.map_or(count, |fewest| fewest.min(count)));
                }
            }
            Ok(())
        });
        if is_listed.await.is_err() {
            bail!("the pod watch stopped before listing");
        }
        Ok(ReadyPods { seen, task })
    }
}

impl ReadyPods {
    /// The pods ready now.
    pub fn ready(&self) -> BTreeSet<String> {
        self.seen.lock().expect("ready pods lock").ready.clone()
    }

    /// Stops watching; returns the fewest pods that were ready at any moment.
    pub async fn fewest(self) -> Result<usize> {
        if self.task.is_finished() {
            self.task.await??;
            bail!("the pod watch stopped early");
        }
        self.task.abort();
        Ok(self.seen.lock().expect("ready pods lock").fewest.unwrap_or(0))
    }
}
