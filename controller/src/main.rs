use clap::{Parser, Subcommand};

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
    /// Print the Rollout CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    match Cli::parse().command {
        Command::Crd => print!("{}", rollouts_controller::api::crd_yaml()),
    }
}
