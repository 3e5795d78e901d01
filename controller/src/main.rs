use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rollouts_controller::context::Settings;
use rollouts_controller::plan::PlanConfig;
use rollouts_controller::run::{self, Options};
use rollouts_controller::runtime::client::RateLimit;
use rollouts_controller::runtime::leader::LeaseSettings;

// jemalloc in every build, so the benchmarked allocator is the shipped one (the image is a static
// musl binary, whose own allocator is slow). Its settings are in .cargo/config.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "rollouts-controller",
    version,
    about = "Progressive delivery for Kubernetes: serves the Argo Rollouts Rollout API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(Box<RunFlags>),
    /// Print the CustomResourceDefinitions as YAML: all of them, or the one named.
    Crd {
        /// rollout, analysisrun or experiment.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(rollouts_controller::api::CRD_FILES))]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser)]
struct RunFlags {
    /// Kubeconfig to use; default: KUBECONFIG, ~/.kube/config, or the in-cluster ServiceAccount.
    #[arg(long, env = "ROLLOUTS_KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, env = "ROLLOUTS_CONTEXT")]
    context: Option<String>,
    /// Watch and manage only this namespace (needs only namespaced RBAC: rbac/controller-namespaced.yaml).
    #[arg(long, env = "ROLLOUTS_NAMESPACE")]
    namespace: Option<String>,
    /// Manage only Rollouts labelled argo-rollouts.argoproj.io/instance-id=<ID>; without it,
    /// only Rollouts without that label.
    #[arg(long, env = "ROLLOUTS_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Seconds between consecutive traffic changes of a promotion or abort (weight, then
    /// Service selector, then weight), so every proxy has the new routes before pods leave a
    /// Service. A Rollout's spec.strategy.canary.trafficSettleSeconds overrides it.
    #[arg(long, env = "ROLLOUTS_SETTLE_SECONDS", default_value_t = 10)]
    settle_seconds: u64,
    /// Address of the admin server (/livez, /readyz, /metrics).
    #[arg(long, env = "ROLLOUTS_ADMIN_ADDRESS", default_value = "0.0.0.0:8090")]
    admin_address: SocketAddr,
    /// Rollouts reconciled at the same time. A reconcile mostly waits for the apiserver: at 1,000
    /// Rollouts rolling at once, 16 left expired pauses queueing (p99 1.75 s to the next weight,
    /// 0.64 s at 64).
    #[arg(long, env = "ROLLOUTS_CONCURRENCY", default_value_t = 64)]
    concurrency: u16,
    /// AnalysisRuns reconciled at the same time. A measurement waits on its provider and then on
    /// the status write: at 1,000 runs measuring every 10 s, 64 left measurements queueing
    /// (lateness p99 1.8 s).
    #[arg(long, env = "ROLLOUTS_ANALYSIS_CONCURRENCY", default_value_t = 128)]
    analysis_concurrency: u16,
    /// Log format.
    #[arg(long, env = "ROLLOUTS_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Kubernetes API requests per second (average) this process may make.
    #[arg(long, env = "ROLLOUTS_QPS", default_value_t = 40.0)]
    qps: f64,
    /// Kubernetes API requests this process may make at once after a quiet spell.
    #[arg(long, env = "ROLLOUTS_BURST", default_value_t = 80)]
    burst: u32,
    /// Reconcile only while holding a coordination.k8s.io Lease, so several replicas can run.
    #[arg(long, env = "ROLLOUTS_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease: defaults to --namespace, then POD_NAMESPACE, then "rollouts".
    #[arg(long, env = "ROLLOUTS_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "ROLLOUTS_LEADER_ELECTION_NAME", default_value = "rollouts-controller-leader")]
    leader_election_name: String,
    /// Seconds a standby waits, after the leader's last renewal, before taking over.
    #[arg(long, env = "ROLLOUTS_LEASE_DURATION", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds a leader may fail to renew before it stops reconciling; less than the duration.
    #[arg(long, env = "ROLLOUTS_LEASE_RENEW_DEADLINE", default_value_t = 10)]
    lease_renew_deadline_seconds: u64,
    /// Seconds between renewals (and between a standby's checks).
    #[arg(long, env = "ROLLOUTS_LEASE_RETRY_PERIOD", default_value_t = 2)]
    lease_retry_period_seconds: u64,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(color);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
}

async fn kube_config(flags: &RunFlags) -> anyhow::Result<kube::Config> {
    let options = KubeConfigOptions { context: flags.context.clone(), ..Default::default() };
    Ok(match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None if flags.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer().await?,
    })
}

/// Resolves on SIGTERM or Ctrl-C; a second signal exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutting down: finishing reconciles in flight (signal again to force)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
}

async fn wait_for_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn run(flags: RunFlags) -> anyhow::Result<()> {
    init_logging(flags.log_format);
    if flags.leader_elect && flags.lease_renew_deadline_seconds >= flags.lease_duration_seconds {
        anyhow::bail!("--lease-renew-deadline-seconds must be less than --lease-duration-seconds");
    }
    let config = kube_config(&flags).await?;
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("rollouts-controller-{}", std::process::id()));
    let leader_election = flags.leader_elect.then(|| LeaseSettings {
        namespace: flags
            .leader_election_namespace
            .clone()
            .or_else(|| flags.namespace.clone())
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "rollouts".into()),
        name: flags.leader_election_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(flags.lease_duration_seconds),
        renew_deadline: Duration::from_secs(flags.lease_renew_deadline_seconds),
        retry: Duration::from_secs(flags.lease_retry_period_seconds.max(1)),
    });
    let options = Options {
        settings: Settings {
            namespace: flags.namespace,
            instance_id: flags.instance_id,
            plan: PlanConfig { settle: Duration::from_secs(flags.settle_seconds) },
            after_write: None,
        },
        admin_address: Some(flags.admin_address),
        concurrency: flags.concurrency.max(1),
        analysis_concurrency: flags.analysis_concurrency.max(1),
        instance_name: identity,
        rate_limit: (flags.qps > 0.0).then_some(RateLimit { qps: flags.qps, burst: flags.burst.max(1) }),
        leader_election,
    };
    run::run(config, options, shutdown_signal()).await
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { name } => {
            let names =
                name.map_or_else(|| rollouts_controller::api::CRD_FILES.map(String::from).to_vec(), |n| vec![n]);
            let documents: Vec<String> =
                names.iter().filter_map(|name| rollouts_controller::api::crd_yaml(name)).collect();
            print!("{}", documents.join("---\n"));
            Ok(())
        }
        Command::Run(flags) => tokio::runtime::Runtime::new()?.block_on(run(*flags)),
    }
}
