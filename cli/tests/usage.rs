//! The plugin's command line, without a cluster: usage errors and unusable kubeconfigs.

use std::process::Command;

fn plugin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-rollouts")).args(args).output().expect("the plugin starts")
}

#[test]
fn an_invalid_argument_shows_usage() {
    let output = plugin(&["set", "image", "web", "nginx"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected CONTAINER=IMAGE, got \"nginx\""), "{stderr}");
    assert!(stderr.contains("try '--help'"), "{stderr}");

    let output = plugin(&["set", "image", "web"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Usage: kubectl rollouts set image <NAME> <CONTAINER=IMAGE>"), "{stderr}");

    let output = plugin(&["get", "deployment", "web"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected NAME, `rollout NAME` or `analysisrun NAME`"));

    let output = plugin(&["retry", "analysisrun", "web"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected NAME or `rollout NAME`"));
}

#[test]
fn help_lists_every_command() {
    let output = plugin(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in
        ["list", "get", "status", "promote", "pause", "resume", "abort", "retry", "restart", "set", "undo", "terminate"]
    {
        assert!(help.lines().any(|line| line.trim_start().starts_with(command)), "{command} missing from:\n{help}");
    }
}

#[test]
fn a_missing_kubeconfig_is_one_line() {
    let output = plugin(&["--kubeconfig", "/nonexistent/kubeconfig", "list"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: reading kubeconfig /nonexistent/kubeconfig"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
