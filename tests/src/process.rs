//! The controller as a separate process, for what only a process shows: signals, leader
//! election between replicas, RBAC of its own ServiceAccount.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use tokio::process::{Child, Command};

use crate::{TestNamespace, kubeconfig_path, poll_until, repo_root};

/// Builds the controller binary once per test run and returns its path.
pub fn controller_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build_binary("rollouts-controller", "rollouts-controller")).clone().map_err(anyhow::Error::msg)
}

/// Builds the kubectl plugin once per test run and returns its path.
pub fn plugin_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build_binary("kubectl-rollouts", "kubectl-rollouts")).clone().map_err(anyhow::Error::msg)
}

/// `cargo build` of one binary of the workspace (debug), and where it is.
fn build_binary(package: &str, binary: &str) -> std::result::Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", binary])
        .current_dir(repo_root())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo build of {package} failed: {status}"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    Ok(target.join("debug").join(binary))
}

impl TestNamespace {
    /// Runs the kubectl plugin (`kubectl rollouts ARGS`) in this namespace as the cluster admin,
    /// as a person would; fails, with what it printed, unless it exits with 0. Returns its stdout.
    pub async fn rollouts_plugin(&self, args: &[&str]) -> Result<String> {
        // The first call builds it: not on the test's runtime.
        let plugin = tokio::task::spawn_blocking(plugin_binary).await??;
        let output = Command::new(plugin)
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["-n", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("starting kubectl-rollouts")?;
        let (stdout, stderr) =
            (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            bail!("kubectl rollouts {} failed ({}):\n{stdout}{stderr}", args.join(" "), output.status);
        }
        Ok(stdout)
    }
}

/// A running `rollouts-controller run` process; killed when dropped.
pub struct ControllerProcess {
    pub child: Child,
    pub admin: SocketAddr,
    pub identity: String,
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts the controller for `namespace`, named `identity`, with extra flags.
    pub async fn start(namespace: &str, identity: &str, kubeconfig: &Path, extra: &[&str]) -> Result<Self> {
        let admin = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log_dir = repo_root().join("target/e2e-logs");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("{namespace}-{identity}.log"));
        let output = std::fs::File::create(&log)?;
        let admin_flag = admin.to_string();
        let mut args =
            vec!["run", "--namespace", namespace, "--settle-seconds", "1", "--admin-address", admin_flag.as_str()];
        args.extend_from_slice(extra);
        let child = Command::new(controller_binary()?)
            .args(&args)
            .env("ROLLOUTS_KUBECONFIG", kubeconfig)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .context("starting rollouts-controller")?;
        Ok(ControllerProcess { child, admin, identity: identity.into(), log })
    }

    /// GETs a path of the admin server; `None` while it doesn't answer.
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin, path).await.ok()
    }

    pub async fn wait_ready(&self) -> Result<()> {
        poll_until(Duration::from_secs(30), || async {
            Ok(self.admin_get("/readyz").await.filter(|(code, _)| *code == 200))
        })
        .await
        .with_context(|| format!("{} never became ready; log: {}", self.identity, self.log.display()))?;
        Ok(())
    }

    pub fn pid(&self) -> Result<i32> {
        let pid = self.child.id().context("the process has exited")?;
        Ok(i32::try_from(pid)?)
    }

    /// Sends a signal (e.g. "TERM", "KILL") with the system's kill command.
    pub async fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid()?.to_string()).status().await?;
        if !status.success() {
            bail!("kill -{signal} failed");
        }
        Ok(())
    }
}

/// A minimal HTTP/1.0 GET over TCP to 127.0.0.1: status code and body.
pub async fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let code = response.split_whitespace().nth(1).context("no status line")?.parse()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// The samples of an OpenMetrics counter family in `text`, each with its labels' values.
pub fn counter_samples(text: &str, family: &str) -> Result<Vec<(Vec<String>, f64)>> {
    use openmetrics_parser::{MetricNumber, OpenMetricsValue, openmetrics::parse_openmetrics};
    let exposition = parse_openmetrics(text).map_err(|e| anyhow::anyhow!("not valid OpenMetrics: {e:?}"))?;
    let family = exposition.families.get(family).with_context(|| format!("no metric family {family}"))?;
    let mut samples = Vec::new();
    for sample in family.iter_samples() {
        if let OpenMetricsValue::Counter(counter) = &sample.value {
            let value = match counter.value {
                MetricNumber::Float(value) => value,
                MetricNumber::Int(value) => value as f64,
            };
            let labels = sample.get_labelset().map_err(|e| anyhow::anyhow!("labels: {e:?}"))?;
            samples.push((labels.iter_values().cloned().collect(), value));
        }
    }
    Ok(samples)
}

/// The value of an OpenMetrics counter in `text`, summed over its series.
pub fn counter(text: &str, family: &str) -> Result<f64> {
    Ok(counter_samples(text, family)?.iter().map(|(_, value)| value).sum())
}

impl TestNamespace {
    /// A kubeconfig that authenticates as ServiceAccount `name` of this namespace.
    pub async fn service_account_kubeconfig(&self, name: &str) -> Result<PathBuf> {
        let accounts: Api<ServiceAccount> = self.api();
        let request = TokenRequest {
            spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
            ..Default::default()
        };
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?
            .status
            .context("no token issued")?
            .token
            .context("no token issued")?;
        let admin = kube::config::Kubeconfig::read_from(kubeconfig_path())?;
        let cluster =
            admin.clusters.first().and_then(|c| c.cluster.clone()).context("admin kubeconfig has no cluster")?;
        let server = cluster.server.context("no server")?;
        let ca = match (cluster.certificate_authority_data, cluster.certificate_authority) {
            (Some(data), _) => data,
            (None, Some(file)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(file)?)
            }
            (None, None) => bail!("admin kubeconfig has no CA"),
        };
        let path = repo_root().join(format!("target/e2e-logs/{}-{name}.kubeconfig", self.name));
        std::fs::create_dir_all(path.parent().context("a parent")?)?;
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: e2e, cluster: {{server: \"{server}\", certificate-authority-data: \"{ca}\"}}}}]\n\
                 users: [{{name: {name}, user: {{token: \"{token}\"}}}}]\n\
                 contexts: [{{name: e2e, context: {{cluster: e2e, user: {name}}}}}]\ncurrent-context: e2e\n"
            ),
        )?;
        Ok(path)
    }
}
