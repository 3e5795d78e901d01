//! rollouts-controller: a progressive-delivery controller that serves the Argo Rollouts API.
#![forbid(unsafe_code)]

pub mod api;
pub mod plan;
