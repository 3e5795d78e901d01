//! Kubernetes Events through the events.k8s.io API; repeats are aggregated into a series.

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType};

use crate::api::Rollout;
use crate::plan::Event;
use crate::reconcile::Context;

pub async fn publish(ctx: &Context, rollout: &Rollout, events: &[Event]) {
    let reference = rollout.object_ref(&());
    for event in events {
        let kube_event = KubeEvent {
            type_: if event.warning { EventType::Warning } else { EventType::Normal },
            reason: event.reason.into(),
            note: Some(event.message.clone()),
            action: event.reason.into(),
            secondary: None,
        };
        // An Event that can't be written must not fail the reconcile that caused it.
        if let Err(error) = ctx.recorder.publish(&kube_event, &reference).await {
            tracing::warn!(%error, reason = event.reason, "could not publish event");
        }
    }
}
