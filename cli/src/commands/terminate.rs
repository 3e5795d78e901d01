//! `terminate analysisrun NAME`: the merge patch `kubectl argo rollouts terminate` sends.

use anyhow::Result;
use rollouts_controller::api::AnalysisRun;

use super::operate::Part;
use super::print;
use crate::client::Cluster;
use crate::patches;

pub async fn terminate_analysis_run(cluster: &Cluster, name: &str) -> Result<()> {
    cluster.merge_patch::<AnalysisRun>(name, Part::Spec, &patches::terminate()).await?;
    print(&format!("analysisrun '{name}' terminated\n"))
}
