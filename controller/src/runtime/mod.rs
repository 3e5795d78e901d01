//! What the controller runs on: the Kubernetes client, leader election, metrics, the Event writer
//! and the admin server. None of it decides anything about a Rollout.

pub mod admin;
pub mod analysis_metrics;
pub mod client;
pub mod events;
pub mod leader;
pub mod metrics;
