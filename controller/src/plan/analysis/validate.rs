//! The checks of a Rollout's analysis that need its templates: each is reported as
//! `InvalidSpec` with the field, before any run is created (so nothing is scaled or routed for
//! a Rollout whose analysis could never run).

use super::runs::{RunKind, RunSource};
use crate::analysis::args::Secrets;
use crate::analysis::metric::{self, Count};
use crate::api::{CanaryStrategy, RolloutAnalysis};
use crate::plan::Observed;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Stands in for the pod-template hashes, which only the plan knows.
const SOME_HASH: &str = "0";

pub fn check(observed: &Observed, canary: &CanaryStrategy, selector: &LabelSelector) -> Result<(), String> {
    let labels = selector.match_labels.clone().unwrap_or_default();
    let source = RunSource {
        rollout: &observed.rollout,
        templates: &observed.analysis_templates,
        selector_labels: &labels,
        stable_hash: SOME_HASH,
        latest_hash: SOME_HASH,
        revision: 1,
    };
    for (index, step) in canary.steps.iter().flatten().enumerate() {
        if let Some(analysis) = &step.analysis {
            let field = format!("spec.strategy.canary.steps[{index}].analysis");
            check_one(&source, RunKind::Step(index), analysis, &field)?;
        }
    }
    if let Some(background) = &canary.analysis {
        check_one(&source, RunKind::Background, &background.analysis, "spec.strategy.canary.analysis")?;
    }
    Ok(())
}

/// The run `analysis` would start, made and prepared as the AnalysisRun controller will.
fn check_one(source: &RunSource, kind: RunKind, analysis: &RolloutAnalysis, field: &str) -> Result<(), String> {
    let names = || analysis.templates.iter().map(|t| t.template_name.as_str()).collect::<Vec<_>>().join(", ");
    if analysis.templates.is_empty() {
        return Err(format!("{field}.templates: Required value: name at least one AnalysisTemplate"));
    }
    for template in &analysis.templates {
        let key = crate::analysis::templates::key(template);
        if !source.templates.contains_key(&key) {
            return Err(format!(
                "{field}.templates: Invalid value: \"{}\": {} not found",
                template.template_name,
                crate::analysis::templates::describe(&key)
            ));
        }
    }
    let run = source
        .run(kind, analysis, &source.base_name(kind))
        .map_err(|error| format!("{field}: Invalid value: \"{}\": {error}", names()))?;
    let prepared = metric::prepare(&run.spec, &run.metadata, &Secrets::Masked)
        .map_err(|error| format!("{field}: Invalid value: \"{}\": {error}", names()))?;
    if let (RunKind::Step(_), Some(endless)) = (kind, prepared.iter().find(|m| m.count == Count::Unbounded)) {
        return Err(format!(
            "{field}.templates: Invalid value: \"{}\": metric \"{}\" runs indefinitely (an interval without a count), so the step could never end; give it a count, or run it as background analysis (spec.strategy.canary.analysis)",
            names(),
            endless.metric.name
        ));
    }
    Ok(())
}
