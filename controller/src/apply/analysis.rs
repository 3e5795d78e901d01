//! AnalysisRuns a Rollout starts, stops and clears away.

use crate::api::{AnalysisRun, Rollout};
use crate::context::{Context, Error};

pub async fn create(_ctx: &Context, _rollout: &Rollout, _run: &AnalysisRun) -> Result<(), Error> {
    todo!("wiring helper")
}

pub async fn terminate(_ctx: &Context, _rollout: &Rollout, _name: &str) -> Result<(), Error> {
    todo!("wiring helper")
}

pub async fn delete(_ctx: &Context, _rollout: &Rollout, _name: &str) -> Result<(), Error> {
    todo!("wiring helper")
}
