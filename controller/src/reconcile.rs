//! One reconcile of one Rollout: observe -> plan -> apply (actions, status, events) -> requeue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action as Requeue;
use tracing::{Instrument, info_span};

use crate::api::Rollout;
use crate::cache::{Key, key_of};
use crate::context::{Context, Error, retry_delay};
use crate::plan;
use crate::runtime::metrics::RolloutInfo;
use crate::{apply, observe};

const LONGEST_REQUEUE: Duration = Duration::from_secs(24 * 3600);

/// Clock for plans; tests of the controller itself inject time through `plan`.
fn now() -> Timestamp {
    Timestamp::now()
}

/// Namespace and name of a Rollout, readable or not.
pub fn guard_key(object: &DeserializeGuard<Rollout>) -> Key {
    match &object.0 {
        Ok(rollout) => key_of(rollout),
        Err(invalid) => {
            (invalid.metadata.namespace.clone().unwrap_or_default(), invalid.metadata.name.clone().unwrap_or_default())
        }
    }
}

pub async fn reconcile(object: Arc<DeserializeGuard<Rollout>>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let (namespace, name) = guard_key(&object);
    let span = info_span!("reconcile", namespace = %namespace, name = %name);
    let started = Instant::now();
    let result = reconcile_inner(&object, &ctx).instrument(span.clone()).await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().err().map(Error::category));
    let key = (namespace, name);
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

async fn reconcile_inner(object: &DeserializeGuard<Rollout>, ctx: &Arc<Context>) -> Result<Requeue, Error> {
    let cached = match &object.0 {
        Ok(rollout) => rollout,
        Err(invalid) => {
            let (namespace, name) = guard_key(object);
            tracing::warn!(error = %invalid.error, "rollout can't be read");
            let status = plan::unreadable(&name, &invalid.error, now());
            apply::write_unreadable(ctx, &namespace, &name, &status).await?;
            return Ok(Requeue::await_change());
        }
    };
    if !ctx.caches_synced() {
        return Err(Error::NotSynced);
    }
    if let Some(triggers) = ctx.triggers.get() {
        ctx.metrics.set_queue_depth(triggers.max_capacity() - triggers.capacity());
    }
    let rollout = ctx.freshest(cached);
    let observed = observe::observe(ctx, &rollout, now()).await?;
    let plan = plan::plan(&observed);
    tracing::debug!(actions = plan.actions.len(), phase = ?plan.status.phase, "planned");
    let (namespace, name) = key_of(&rollout);
    ctx.metrics.rollout(RolloutInfo {
        namespace: &namespace,
        name: &name,
        traffic_router: if rollout.spec.strategy.canary.as_ref().is_some_and(|c| c.traffic_routing.is_some()) {
            "Istio"
        } else {
            ""
        },
        phase: plan.status.phase.as_deref().unwrap_or_default(),
    });
    match apply::apply(ctx, &observed, &plan).await {
        Ok(written) => {
            if let Some(expired) = plan.pause_expired_at {
                ctx.metrics.pause_expired(Duration::try_from(now().duration_since(expired)).unwrap_or_default());
            }
            if let Some(written) = written {
                ctx.remember_written(written);
            }
        }
        Err(Error::InvalidTemplate(message)) => {
            // The apiserver is the judge of pod templates: report its verdict as InvalidSpec.
            let invalid = plan::invalid_template(&observed, &message);
            apply::apply(ctx, &observed, &invalid).await?;
            return Ok(Requeue::await_change());
        }
        Err(Error::HashCollision(name)) => {
            // Something else holds the ReplicaSet's name: the next look names the template anew.
            apply::apply(ctx, &observed, &plan::hash_collision(&observed)).await?;
            return Err(Error::HashCollision(name));
        }
        Err(error) => return Err(error),
    }
    // The time is absolute: the writes above took time, and the next look must not be late. A
    // time years away (a long pause) is looked at again daily instead of overflowing a timer.
    Ok(match plan.requeue_at {
        Some(at) => {
            let wait = Duration::try_from(at.duration_since(now())).unwrap_or(Duration::ZERO);
            Requeue::requeue(wait.min(LONGEST_REQUEUE))
        }
        None => Requeue::await_change(),
    })
}

/// Transient failures retry with exponential backoff per Rollout: 0.5 s, 1 s, 2 s ... 5 min.
pub fn error_policy(object: Arc<DeserializeGuard<Rollout>>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let key = guard_key(&object);
    let count = ctx.failed(&key);
    let delay = retry_delay(count);
    tracing::warn!(namespace = %key.0, name = %key.1, category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Requeue::requeue(delay)
}
