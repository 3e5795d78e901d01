//! The controller under test, run in-process and scoped to one test's namespace, so tests run
//! in parallel without seeing each other's Rollouts.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::FutureExt;
use rollouts_controller::context::{Settings, WriteHook};
use rollouts_controller::plan::{Action, PlanConfig};
use rollouts_controller::run::{self, Options};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{TestNamespace, admin_client, admin_config};

/// Which writes a controller crashes after: an action, or `None` for a status write.
pub type CrashPoint = fn(Option<&Action>) -> bool;

/// Settle gap used by tests: long enough to observe, short enough to be quick.
pub const TEST_SETTLE: Duration = Duration::from_secs(1);

pub struct RunningController {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
    /// Where its admin server listens.
    pub admin: SocketAddr,
}

fn free_local_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl TestNamespace {
    /// Starts a controller that manages only this namespace.
    pub async fn start_controller(&self) -> Result<RunningController> {
        self.start_controller_with(None).await
    }

    /// Starts a controller that stops right after the first write `crash_after` accepts (an
    /// action, or `None` for a status write), as if it crashed there: the receiver fires once it
    /// has made that write. Drop the controller to finish the crash.
    pub async fn start_controller_crashing_after(
        &self,
        crash_after: CrashPoint,
    ) -> Result<(RunningController, oneshot::Receiver<()>)> {
        let (wrote, written) = oneshot::channel();
        let wrote = Arc::new(Mutex::new(Some(wrote)));
        let hook = WriteHook(Arc::new(move |write| {
            let mut not_yet = wrote.lock().unwrap_or_else(|p| p.into_inner());
            // From the crash on, nothing more is written.
            if not_yet.is_none() || crash_after(write) {
                if let Some(wrote) = not_yet.take() {
                    let _ = wrote.send(());
                }
                return futures::future::pending().boxed();
            }
            futures::future::ready(()).boxed()
        }));
        Ok((self.start_controller_with(Some(hook)).await?, written))
    }

    async fn start_controller_with(&self, after_write: Option<WriteHook>) -> Result<RunningController> {
        let admin = free_local_port()?;
        let options = Options {
            settings: Settings {
                namespace: Some(self.name.clone()),
                instance_id: None,
                plan: PlanConfig { settle: TEST_SETTLE },
                after_write,
            },
            admin_address: Some(admin),
            concurrency: 4,
            analysis_concurrency: 4,
            instance_name: format!("e2e-{}", self.name),
            rate_limit: None,
            leader_election: None,
        };
        // Fails, with what to do, when the cluster is unreachable.
        admin_client().await?;
        let config = admin_config().await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run::run(config, options, async move {
            let _ = stopped.await;
        }));
        Ok(RunningController { stop: Some(stop), task: Some(task), admin })
    }
}

impl RunningController {
    /// Stops it the way SIGTERM does: the reconcile in flight finishes first.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await???;
        }
        Ok(())
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
