//! Kubernetes Events through the events.k8s.io API; repeats are aggregated into a series.
//!
//! Events are written by background workers, so a reconcile never waits for them: after a pause
//! expires, the next weight is written without queueing behind Events of other Rollouts. Each
//! Rollout's Events go through one worker, in order.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use tokio::sync::mpsc;

use crate::api::Rollout;
use crate::plan::Event;

const WORKERS: usize = 4;
/// Events waiting to be written; a reconcile waits only when this many are pending.
const QUEUE: usize = 4096;

pub struct EventSink {
    workers: Vec<mpsc::Sender<(ObjectReference, KubeEvent)>>,
}

impl EventSink {
    /// Starts the workers (on the current tokio runtime).
    pub fn start(recorder: Recorder) -> Self {
        let workers = (0..WORKERS)
            .map(|_| {
                let (sender, mut receiver) = mpsc::channel::<(ObjectReference, KubeEvent)>(QUEUE);
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    while let Some((reference, event)) = receiver.recv().await {
                        // An Event that can't be written must not fail anything else.
                        if let Err(error) = recorder.publish(&event, &reference).await {
                            tracing::warn!(%error, reason = %event.reason, "could not publish event");
                        }
                    }
                });
                sender
            })
            .collect();
        EventSink { workers }
    }

    pub async fn publish(&self, rollout: &Rollout, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let reference = rollout.object_ref(&());
        let mut hasher = DefaultHasher::new();
        (&reference.namespace, &reference.name).hash(&mut hasher);
        let worker = &self.workers[(hasher.finish() as usize) % self.workers.len()];
        for event in events {
            let kube_event = KubeEvent {
                type_: if event.warning { EventType::Warning } else { EventType::Normal },
                reason: event.reason.into(),
                note: Some(event.message.clone()),
                action: event.reason.into(),
                secondary: None,
            };
            if worker.send((reference.clone(), kube_event)).await.is_err() {
                return;
            }
        }
    }
}
