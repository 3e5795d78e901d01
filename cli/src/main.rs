//! `kubectl rollouts ...`: flags, then one command.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::error::ErrorKind;
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubectl_rollouts::client::{Cluster, Target, connect};
use kubectl_rollouts::commands::{self, OutputFormat, Screen};
use kubectl_rollouts::render::Style;
use rollouts_controller::plan::step_list::parse_duration;

#[derive(Parser)]
#[command(
    name = "kubectl-rollouts",
    bin_name = "kubectl rollouts",
    version,
    about = "Watch and operate Rollouts (argoproj.io/v1alpha1)",
    after_help = "Interchangeable with `kubectl argo rollouts` for the commands both have."
)]
struct Cli {
    #[command(flatten)]
    target: TargetFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct TargetFlags {
    /// Namespace to work in (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
}

/// `--watch`, `--watch=true` or `--watch=false`, as Argo's plugin accepts.
#[derive(Args)]
struct WatchFlag {
    /// Keep watching for changes.
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_value_t = false,
          default_missing_value = "true", action = ArgAction::Set)]
    watch: bool,
}

/// The kinds `get` and `list` show, by the names kubectl knows them by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    #[value(aliases = ["rollout", "ro"])]
    Rollouts,
    #[value(aliases = ["analysisrun", "ar"])]
    Analysisruns,
}

#[derive(Subcommand)]
enum Command {
    /// List rollouts or analysis runs: `list [rollouts|analysisruns] [-A]`.
    List {
        /// What to list (default: rollouts).
        #[arg(value_enum)]
        kind: Option<Kind>,
        /// List in every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum)]
        output: Option<OutputFormat>,
    },
    /// Show a rollout with its ReplicaSets and pods, or an analysis run: `get [rollout|analysisrun] NAME`.
    Get {
        /// NAME, `rollout NAME` or `analysisrun NAME`.
        #[arg(value_name = "NAME", num_args = 1..=2, required = true)]
        words: Vec<String>,
        #[command(flatten)]
        watch: WatchFlag,
        /// Stop watching after this long (e.g. 30s, 5m).
        #[arg(long, value_parser = duration)]
        timeout: Option<Duration>,
        #[arg(short, long, value_enum, conflicts_with = "watch")]
        output: Option<OutputFormat>,
    },
    /// Print `<Phase>` or `<Phase> - <message>`; with --watch, until Healthy (exit 0) or Degraded.
    Status {
        name: String,
        #[command(flatten)]
        watch: WatchFlag,
        /// Give up watching after this long (e.g. 60s, 5m; 0: never).
        #[arg(short, long, value_parser = duration)]
        timeout: Option<Duration>,
    },
    /// End the current pause (or skip the current step); --full skips all remaining steps.
    Promote {
        name: String,
        #[arg(long)]
        full: bool,
    },
    /// Pause a rollout (spec.paused).
    Pause { name: String },
    /// Lift a manual pause without skipping a step.
    Resume { name: String },
    /// Abort the update: traffic and pods go back to the stable revision.
    Abort { name: String },
    /// Retry an aborted update: `retry [rollout] NAME`.
    Retry {
        #[arg(value_name = "NAME", num_args = 1..=2, required = true)]
        words: Vec<String>,
    },
    /// Replace every pod, a few at a time.
    Restart {
        name: String,
        /// Restart after this long (e.g. 10s).
        #[arg(long = "in", value_parser = duration, default_value = "0s")]
        delay: Duration,
    },
    /// Change the pod template.
    #[command(subcommand)]
    Set(SetCommand),
    /// Go back to an earlier revision's pod template.
    Undo {
        name: String,
        /// The revision to go back to (default: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: u64,
    },
    /// Stop an analysis run: `terminate analysisrun NAME`.
    #[command(subcommand)]
    Terminate(TerminateCommand),
    /// Start an analysis run from a template: `create analysisrun --from TEMPLATE -a NAME=VALUE`.
    #[command(subcommand)]
    Create(CreateCommand),
}

#[derive(Subcommand)]
enum CreateCommand {
    /// An AnalysisRun with the metrics of a template and those it includes.
    #[command(name = "analysisrun", alias = "ar")]
    AnalysisRun {
        /// The AnalysisTemplate (in the namespace) to make it from.
        #[arg(long, required_unless_present = "from_global", conflicts_with = "from_global")]
        from: Option<String>,
        /// The ClusterAnalysisTemplate to make it from.
        #[arg(long)]
        from_global: Option<String>,
        /// The run's name (default: the template's name and a random suffix).
        #[arg(long)]
        name: Option<String>,
        /// A value for an argument of the template: NAME=VALUE (repeatable).
        #[arg(short = 'a', long = "argument", value_name = "NAME=VALUE", value_parser = argument)]
        arguments: Vec<(String, String)>,
    },
}

fn argument(text: &str) -> Result<(String, String), String> {
    key_value(text, "NAME=VALUE")
}

#[derive(Subcommand)]
enum TerminateCommand {
    /// No more measurements: the run ends (spec.terminate).
    #[command(name = "analysisrun", alias = "ar")]
    AnalysisRun { name: String },
}

#[derive(Subcommand)]
enum SetCommand {
    /// Set a container's image: `set image NAME CONTAINER=IMAGE` (`*=IMAGE`: every container).
    Image {
        name: String,
        #[arg(value_name = "CONTAINER=IMAGE", value_parser = container_image)]
        container_image: (String, String),
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(&IntOrString::String(text.to_string()))
        .ok_or_else(|| format!("\"{text}\" is not a duration (e.g. 30s, 5m, 1h30m)"))
}

/// `KEY=VALUE`, as `shape` names it; the key may not be empty.
fn key_value(text: &str, shape: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected {shape}, got \"{text}\"")),
    }
}

fn container_image(text: &str) -> Result<(String, String), String> {
    key_value(text, "CONTAINER=IMAGE").and_then(|(container, image)| match image.is_empty() {
        true => Err(format!("expected CONTAINER=IMAGE, got \"{text}\"")),
        false => Ok((container, image)),
    })
}

/// The kind and name in `NAME` (a rollout) or `KIND NAME`; anything else is a usage error.
fn get_target(words: &[String]) -> (Kind, String) {
    let target = match words {
        [name] => Some((Kind::Rollouts, name.clone())),
        [kind, name] => Kind::from_str(kind, false).ok().map(|kind| (kind, name.clone())),
        _ => None,
    };
    target.unwrap_or_else(|| usage_error("expected NAME, `rollout NAME` or `analysisrun NAME`"))
}

/// The name in `NAME` or `rollout NAME`; anything else is a usage error.
fn rollout_name(words: &[String]) -> String {
    match words {
        [name] => name.clone(),
        [kind, name] if Kind::from_str(kind, false) == Ok(Kind::Rollouts) => name.clone(),
        _ => usage_error("expected NAME or `rollout NAME`"),
    }
}

fn usage_error(message: &str) -> ! {
    Cli::command().error(ErrorKind::InvalidValue, message).exit()
}

/// Usage errors are reported before connecting, so they never wait on the cluster.
fn check_usage(command: &Command) {
    match command {
        Command::Get { words, .. } => _ = get_target(words),
        Command::Retry { words } => _ = rollout_name(words),
        _ => {}
    }
}

async fn run(command: Command, cluster: &Cluster, screen: Screen) -> Result<()> {
    match command {
        Command::List { kind: None | Some(Kind::Rollouts), all_namespaces, output } => {
            commands::list(cluster, all_namespaces, output, screen).await
        }
        Command::List { kind: Some(Kind::Analysisruns), all_namespaces, output } => {
            commands::list_analysis_runs(cluster, all_namespaces, output, screen).await
        }
        Command::Get { words, watch, timeout, output } => match get_target(&words) {
            (Kind::Rollouts, name) => commands::get(cluster, &name, output, watch.watch, timeout, screen).await,
            (Kind::Analysisruns, name) => {
                commands::get_analysis_run(cluster, &name, output, watch.watch, timeout, screen).await
            }
        },
        Command::Status { name, watch, timeout } => commands::status(cluster, &name, watch.watch, timeout).await,
        Command::Promote { name, full } => commands::promote(cluster, &name, full).await,
        Command::Pause { name } => commands::pause(cluster, &name).await,
        Command::Resume { name } => commands::resume(cluster, &name).await,
        Command::Abort { name } => commands::abort(cluster, &name).await,
        Command::Retry { words } => commands::retry(cluster, &rollout_name(&words)).await,
        Command::Restart { name, delay } => commands::restart(cluster, &name, delay.as_secs()).await,
        Command::Set(SetCommand::Image { name, container_image: (container, image) }) => {
            commands::set_image(cluster, &name, &container, &image).await
        }
        Command::Undo { name, to_revision } => commands::undo(cluster, &name, to_revision).await,
        Command::Terminate(TerminateCommand::AnalysisRun { name }) => {
            commands::terminate_analysis_run(cluster, &name).await
        }
        Command::Create(CreateCommand::AnalysisRun { from, from_global, name, arguments }) => {
            let from = match (from, from_global) {
                (_, Some(global)) => (true, global),
                (Some(local), None) => (false, local),
                (None, None) => usage_error("give --from TEMPLATE or --from-global TEMPLATE"),
            };
            commands::create_analysis_run(cluster, from, name, arguments).await
        }
    }
}

fn broken_pipe(error: &anyhow::Error) -> bool {
    error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    check_usage(&cli.command);
    let terminal = std::io::stdout().is_terminal();
    let screen = Screen { style: Style::detect(terminal, std::env::var_os("NO_COLOR").is_some()), terminal };
    let target =
        Target { kubeconfig: cli.target.kubeconfig, context: cli.target.context, namespace: cli.target.namespace };
    let outcome = match connect(&target).await {
        Ok(cluster) => run(cli.command, &cluster, screen).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_parse_like_argo() {
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert!(duration("soon").is_err());
        assert_eq!(container_image("*=nginx:1.27"), Ok(("*".to_string(), "nginx:1.27".to_string())));
        assert!(container_image("nginx").is_err());
        assert!(container_image("=nginx").is_err());
        assert_eq!(rollout_name(&["web".to_string()]), "web");
        assert_eq!(rollout_name(&["rollout".to_string(), "web".to_string()]), "web");
        let cli = Cli::try_parse_from(["kubectl-rollouts", "status", "web", "--watch=false", "-n", "ns"]);
        assert!(cli.is_ok_and(|cli| matches!(cli.command, Command::Status { watch: WatchFlag { watch: false }, .. })));
        let cli = Cli::try_parse_from(["kubectl-rollouts", "retry", "rollout", "web"]);
        assert!(cli.is_ok_and(|cli| matches!(cli.command, Command::Retry { words } if words == ["rollout", "web"])));
        assert!(Cli::try_parse_from(["kubectl-rollouts", "list", "deployments"]).is_err());
    }

    #[test]
    fn analysis_runs_go_by_kubectl_s_names() {
        let words = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(get_target(&words(&["web"])), (Kind::Rollouts, "web".to_string()));
        assert_eq!(get_target(&words(&["ro", "web"])), (Kind::Rollouts, "web".to_string()));
        for kind in ["analysisrun", "analysisruns", "ar"] {
            assert_eq!(get_target(&words(&[kind, "web-1"])), (Kind::Analysisruns, "web-1".to_string()));
        }
        for kind in ["analysisruns", "analysisrun", "ar"] {
            let cli = Cli::try_parse_from(["kubectl-rollouts", "list", kind, "-A"]);
            assert!(cli.is_ok_and(|cli| matches!(cli.command, Command::List { kind: Some(Kind::Analysisruns), .. })));
        }
        let cli = Cli::try_parse_from(["kubectl-rollouts", "terminate", "ar", "web-1"]);
        assert!(cli.is_ok_and(
            |cli| matches!(cli.command, Command::Terminate(TerminateCommand::AnalysisRun { name }) if name == "web-1")
        ));
        assert!(Cli::try_parse_from(["kubectl-rollouts", "terminate", "web-1"]).is_err());
        let cli = Cli::try_parse_from(["kubectl-rollouts", "create", "ar", "--from", "t", "-a", "svc=web", "-a", "x="]);
        assert!(cli.is_ok_and(|cli| matches!(&cli.command,
            Command::Create(CreateCommand::AnalysisRun { from: Some(from), arguments, .. })
                if from == "t" && arguments == &[("svc".to_string(), "web".to_string()), ("x".to_string(), String::new())])));
        assert!(
            Cli::try_parse_from(["kubectl-rollouts", "create", "ar", "-a", "svc=web"]).is_err(),
            "--from is required"
        );
        assert!(Cli::try_parse_from(["kubectl-rollouts", "create", "ar", "--from", "t", "-a", "=web"]).is_err());
    }
}
