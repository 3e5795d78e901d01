//! Leader election with a coordination.k8s.io Lease.
//!
//! Fencing by time, as client-go does it: the leader renews every `retry`; if it has not renewed
//! for `renew_deadline` it steps down, and a standby takes over only after it has seen the
//! Lease unchanged for the full lease duration (by its own clock, so clock skew between nodes
//! doesn't matter). Since `renew_deadline` < duration, an old leader has stopped writing before a
//! new one starts. Every Lease write is guarded by its resourceVersion. A leader that shuts down
//! releases the Lease, and the standby, which watches it, takes over at once.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::api::FIELD_MANAGER;

#[derive(Clone, Debug, PartialEq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This process, as written in the Lease and in Events.
    pub identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

/// What the standby last saw of the Lease, and when it saw it change.
struct Observed {
    record: (Option<String>, Option<Timestamp>, Option<String>),
    since: Instant,
}

struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

fn post_params() -> PostParams {
    PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

impl Elector {
    fn lease(&self, lease: Option<Lease>, transitions: i32, acquired: Option<MicroTime>) -> Lease {
        let now = MicroTime(Timestamp::now());
        let mut lease = lease.unwrap_or_else(|| Lease {
            metadata: ObjectMeta { name: Some(self.settings.name.clone()), ..Default::default() },
            spec: None,
        });
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: i32::try_from(self.settings.duration.as_secs()).ok(),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        });
        lease
    }

    /// Acquires or renews the Lease. `Ok(false)`: someone else holds it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let name = self.settings.name.clone();
        let Some(current) = self.api.get_opt(&name).await? else {
            return match self.api.create(&post_params(), &self.lease(None, 0, None)).await {
                Ok(_) => Ok(true),
                Err(error) if is_conflict(&error) => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let transitions = spec.lease_transitions.unwrap_or(0);
        let replacement = if holder.as_deref() == Some(self.settings.identity.as_str()) {
            self.lease(Some(current), transitions, spec.acquire_time)
        } else {
            if holder.is_some() && !self.expired(&current, &spec) {
                return Ok(false);
            }
            self.lease(Some(current), transitions + 1, None)
        };
        match self.api.replace(&name, &post_params(), &replacement).await {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether the holder has not renewed for the lease duration, as measured here.
    fn expired(&mut self, lease: &Lease, spec: &LeaseSpec) -> bool {
        let record = (spec.holder_identity.clone(), spec.renew_time.as_ref().map(|t| t.0), lease.resource_version());
        let now = Instant::now();
        match &self.observed {
            Some(seen) if seen.record == record => {}
            _ => self.observed = Some(Observed { record, since: now }),
        }
        let duration = spec
            .lease_duration_seconds
            .map_or(self.settings.duration, |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
        self.observed.as_ref().is_some_and(|seen| now.duration_since(seen.since) >= duration)
    }

    /// Gives the Lease up so a standby takes over at once.
    async fn release(&self) {
        let name = &self.settings.name;
        let Ok(Some(mut lease)) = self.api.get_opt(name).await else { return };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(name, &post_params(), &lease).await {
            Ok(_) => tracing::info!("released the leader Lease"),
            Err(error) => tracing::warn!(%error, "could not release the leader Lease"),
        }
    }
}

/// Campaigns for the Lease until `shutdown` turns true, publishing whether this process leads.
/// On shutdown the Lease is released (after the caller has stopped reconciling).
pub async fn campaign(
    client: Client,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut lease_changes =
        watcher::watcher(api.clone(), watcher::Config::default().fields(&format!("metadata.name={}", settings.name)))
            .boxed();
    let mut elector = Elector { api, settings: settings.clone(), observed: None };
    let mut last_renewed: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let attempt = match last_renewed {
            // A leader gives each renewal only what is left of its renew deadline.
            Some(renewed) => {
                let left = settings.renew_deadline.saturating_sub(renewed.elapsed());
                tokio::time::timeout(left, elector.try_acquire_or_renew()).await.unwrap_or(Ok(false))
            }
            None => elector.try_acquire_or_renew().await,
        };
        match attempt {
            Ok(true) => {
                if last_renewed.is_none() {
                    tracing::info!(identity = %settings.identity, "became the leader");
                }
                last_renewed = Some(Instant::now());
                leading.send_replace(true);
            }
            Ok(false) | Err(_) if last_renewed.is_some_and(|r| r.elapsed() < settings.renew_deadline) => {
                if let Err(error) = attempt {
                    tracing::warn!(%error, "could not renew the leader Lease; retrying");
                }
            }
            Ok(false) | Err(_) => {
                if let Err(error) = &attempt {
                    tracing::warn!(%error, "leader election");
                }
                if last_renewed.take().is_some() {
                    tracing::warn!("lost the leader Lease: stopping");
                }
                leading.send_replace(false);
            }
        }
        // Wait for the next round: a change of the Lease wakes a standby at once.
        let standby = last_renewed.is_none();
        tokio::select! {
            _ = tokio::time::sleep(settings.retry) => {}
            _ = lease_changes.next(), if standby => {}
            _ = shutdown.changed() => {}
        }
    }
    if last_renewed.is_some() {
        // The caller stops reconciling before flipping `shutdown`; now nobody writes.
        elector.release().await;
    }
    leading.send_replace(false);
}
