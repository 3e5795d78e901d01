//! rollouts-controller: a progressive-delivery controller that serves the Argo Rollouts API.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod apply;
pub mod cache;
pub mod cached;
pub mod context;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod run;
pub mod run_store;
pub mod runtime;
pub mod written;
