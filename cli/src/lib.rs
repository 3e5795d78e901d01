//! kubectl-rollouts: a kubectl plugin that watches and operates Rollouts, interchangeable with
//! `kubectl argo rollouts` for the commands both have.
#![forbid(unsafe_code)]

pub mod client;
pub mod commands;
pub mod family;
pub mod patches;
pub mod phase;
pub mod render;
mod suggest;
