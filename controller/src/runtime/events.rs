//! Kubernetes Events through the events.k8s.io API.
//!
//! Events are written by background workers, so a reconcile never waits for them: after a pause
//! expires, the next weight is written without queueing behind Events. Each Rollout's Events go
//! through one worker, in order. When the apiserver falls so far behind that a worker's queue is
//! full, new Events are dropped and counted (`rollouts_controller_events_dropped_total`), as
//! client-go's recorder does, rather than holding up a reconcile. An Event repeated word for word
//! within a few minutes becomes a series on the first one (count and last time) instead of a new
//! object. What is remembered for that is a few bytes per Event, and forgotten after the same few
//! minutes.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::FIELD_MANAGER;
use crate::plan::Event;
use crate::runtime::metrics::Metrics;

const WORKERS: usize = 4;
/// Events waiting to be written, per worker.
const QUEUE: usize = 4096;
/// How long a repeat joins the earlier Event's series.
const SERIES_WINDOW: Duration = Duration::from_secs(360);
const CONTROLLER: &str = "rollouts-controller";

struct Pending {
    regarding: ObjectReference,
    event: Event,
}

/// An Event already written, that a word-for-word repeat extends.
struct Written {
    name: String,
    count: i32,
    at: Instant,
}

pub struct EventSink {
    workers: Vec<mpsc::Sender<Pending>>,
    metrics: Metrics,
}

impl EventSink {
    /// Starts the workers (on the current tokio runtime).
    pub fn start(client: Client, instance: String, metrics: Metrics) -> Self {
        let workers = (0..WORKERS)
            .map(|_| {
                let (sender, receiver) = mpsc::channel(QUEUE);
                tokio::spawn(write_events(client.clone(), instance.clone(), receiver));
                sender
            })
            .collect();
        EventSink { workers, metrics }
    }

    /// Queues `events` about `object` (a Rollout, an AnalysisRun).
    pub fn publish<K: Resource<DynamicType = ()>>(&self, object: &K, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let regarding = object.object_ref(&());
        let mut hasher = DefaultHasher::new();
        (&regarding.namespace, &regarding.name).hash(&mut hasher);
        let worker = &self.workers[(hasher.finish() as usize) % self.workers.len()];
        for event in events {
            match worker.try_send(Pending { regarding: regarding.clone(), event: event.clone() }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => self.metrics.event_dropped(),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

async fn write_events(client: Client, instance: String, mut queue: mpsc::Receiver<Pending>) {
    let mut written: HashMap<u64, Written> = HashMap::new();
    let mut sweep = tokio::time::interval(SERIES_WINDOW);
    loop {
        tokio::select! {
            next = queue.recv() => {
                let Some(pending) = next else { return };
                // An Event that can't be written must not fail anything else.
                if let Err(error) = write(&client, &instance, &mut written, pending).await {
                    tracing::warn!(%error, "could not write an Event");
                }
            }
            _ = sweep.tick() => written.retain(|_, w| w.at.elapsed() < SERIES_WINDOW),
        }
    }
}

async fn write(
    client: &Client,
    instance: &str,
    written: &mut HashMap<u64, Written>,
    pending: Pending,
) -> Result<(), kube::Error> {
    let Pending { regarding, event } = pending;
    let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
    let api: Api<KubeEvent> = Api::namespaced(client.clone(), &namespace);
    let mut hasher = DefaultHasher::new();
    (&regarding.uid, &regarding.name, event.reason, &event.message, event.warning).hash(&mut hasher);
    let key = hasher.finish();
    let now = Timestamp::now();
    if let Some(earlier) = written.get_mut(&key).filter(|w| w.at.elapsed() < SERIES_WINDOW) {
        earlier.count += 1;
        earlier.at = Instant::now();
        let series = EventSeries { count: earlier.count, last_observed_time: MicroTime(now) };
        let patch = json!({ "series": series });
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        api.patch(&earlier.name, &params, &Patch::Merge(&patch)).await?;
        return Ok(());
    }
    let name = format!("{}.{:x}", regarding.name.as_deref().unwrap_or(CONTROLLER), now.as_nanosecond());
    let object = KubeEvent {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..Default::default() },
        event_time: Some(MicroTime(now)),
        action: Some(event.reason.into()),
        reason: Some(event.reason.into()),
        note: Some(event.message),
        type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
        regarding: Some(regarding),
        reporting_controller: Some(CONTROLLER.into()),
        reporting_instance: Some(instance.into()),
        ..Default::default()
    };
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    api.create(&params, &object).await?;
    written.insert(key, Written { name, count: 1, at: Instant::now() });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Rollout, RolloutSpec};

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_events_instead_of_waiting() {
        // Nothing listens there; the worker never gets to run before the assertions anyway (this
        // runtime has one thread and the test does not yield).
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let metrics = Metrics::new();
        let sink = EventSink::start(client, "test".into(), metrics.clone());
        let mut rollout = Rollout::new("web", RolloutSpec::default());
        rollout.metadata.namespace = Some("prod".into());
        let events: Vec<Event> = (0..QUEUE + 10)
            .map(|i| Event { warning: false, reason: "RolloutUpdated", message: format!("update {i}") })
            .collect();

        sink.publish(&rollout, &events);

        assert!(metrics.encode().contains("rollouts_controller_events_dropped_total 10\n"), "{}", metrics.encode());
    }
}
