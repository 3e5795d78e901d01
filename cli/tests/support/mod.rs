//! The plugin as the e2e tests run it: as one user, in one namespace, through its binary.
#![allow(dead_code)] // each test file uses a part of it

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::{TestNamespace, User, kubeconfig_path, poll_until};

/// What one run of the plugin printed.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The plugin, as one user, in one namespace.
pub struct Plugin {
    kubeconfig: PathBuf,
    namespace: String,
}

impl Plugin {
    pub fn admin(ns: &TestNamespace) -> Self {
        Plugin { kubeconfig: kubeconfig_path(), namespace: ns.name.clone() }
    }

    pub fn user(ns: &TestNamespace, user: User) -> Self {
        Plugin { kubeconfig: user.kubeconfig(), namespace: ns.name.clone() }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-rollouts"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["-n", &self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Result<Run> {
        let output = self.command(args).output().await.context("starting kubectl-rollouts")?;
        Ok(Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs and fails unless the plugin exits with 0; returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        let run = self.run(args).await?;
        if !run.success {
            bail!("kubectl-rollouts {} failed:\n{}{}", args.join(" "), run.stdout, run.stderr);
        }
        Ok(run.stdout)
    }

    /// Runs and fails unless the plugin exits non-zero; returns what it printed on stderr.
    pub async fn fails(&self, args: &[&str]) -> Result<String> {
        let run = self.run(args).await?;
        if run.success {
            bail!("kubectl-rollouts {} succeeded but should have failed:\n{}", args.join(" "), run.stdout);
        }
        Ok(run.stderr)
    }

    /// [`Plugin::ok`], retried for a while: new RBAC bindings take a moment to apply.
    pub async fn eventually_ok(&self, args: &[&str]) -> Result<String> {
        let outcome = poll_until(Duration::from_secs(20), || async {
            let run = self.run(args).await?;
            Ok(run.success.then_some(run.stdout))
        })
        .await;
        match outcome {
            Ok(stdout) => Ok(stdout),
            Err(_) => self.ok(args).await,
        }
    }
}

/// Asserts that `text` has a line that, trimmed at the end, equals `line`.
pub fn assert_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l.trim_end() == line), "no line {line:?} in:\n{text}");
}
