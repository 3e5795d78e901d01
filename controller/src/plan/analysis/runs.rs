//! The AnalysisRun a Rollout starts: its name, labels, owner, arguments and spec (upstream's
//! shape, so `kubectl argo rollouts get` finds it), built the same way for validation and for
//! the run that is created.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use super::super::objects::owner;
use crate::analysis::args::field_value;
use crate::analysis::templates::{self, TemplateKey};
use crate::api::{
    AnalysisRun, AnalysisRunArgument, AnalysisTemplateSpec, Argument, INSTANCE_ID_LABEL, POD_TEMPLATE_HASH_LABEL,
    PodTemplateHashValue, REVISION_ANNOTATION, ROLLOUT_TYPE_LABEL, Rollout, RolloutAnalysis, STEP_INDEX_LABEL,
};

/// Which of a Rollout's analyses a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// The run of the analysis step at this index.
    Step(usize),
    Background,
}

impl RunKind {
    /// The `rollout-type` label, and how Events name the run.
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Step(_) => crate::api::STEP_RUN_TYPE,
            RunKind::Background => crate::api::BACKGROUND_RUN_TYPE,
        }
    }
}

/// What a run's name, labels and arguments are made of.
pub struct RunSource<'a> {
    pub rollout: &'a Rollout,
    pub templates: &'a BTreeMap<TemplateKey, AnalysisTemplateSpec>,
    pub selector_labels: &'a BTreeMap<String, String>,
    /// Pod-template hashes of the stable and the current (latest) ReplicaSet.
    pub stable_hash: &'a str,
    pub latest_hash: &'a str,
    pub revision: u64,
}

impl RunSource<'_> {
    /// `<rollout>-<hash>-<revision>` for the background run, `…-<step index>` for a step's.
    pub fn base_name(&self, kind: RunKind) -> String {
        let rollout = self.rollout.metadata.name.as_deref().unwrap_or_default();
        let base = format!("{rollout}-{}-{}", self.latest_hash, self.revision);
        match kind {
            RunKind::Step(index) => format!("{base}-{index}"),
            RunKind::Background => base,
        }
    }

    /// The run `analysis` asks for, named `name`; or why it can't be made (a missing template,
    /// an argument without a value, a field the Rollout doesn't have).
    pub fn run(&self, kind: RunKind, analysis: &RolloutAnalysis, name: &str) -> Result<AnalysisRun, String> {
        let roots: Vec<TemplateKey> = analysis.templates.iter().map(templates::key).collect();
        let supplied = analysis.args.iter().map(|arg| self.argument(arg)).collect::<Result<Vec<_>, _>>()?;
        let mut spec = templates::run_spec(&roots, self.templates, &supplied)?;
        // The Rollout's rules first, then the templates'.
        spec.dry_run = merged(&analysis.dry_run, &spec.dry_run);
        spec.measurement_retention = merged(&analysis.measurement_retention, &spec.measurement_retention);
        Ok(AnalysisRun { metadata: self.metadata(kind, analysis, name), spec, status: None })
    }

    fn metadata(&self, kind: RunKind, analysis: &RolloutAnalysis, name: &str) -> ObjectMeta {
        let extra = analysis.analysis_run_metadata.clone().unwrap_or_default();
        let mut labels = BTreeMap::from([
            (POD_TEMPLATE_HASH_LABEL.to_string(), self.latest_hash.to_string()),
            (ROLLOUT_TYPE_LABEL.to_string(), kind.label().to_string()),
        ]);
        if let RunKind::Step(index) = kind {
            labels.insert(STEP_INDEX_LABEL.into(), index.to_string());
        }
        if let Some(id) = self.rollout.metadata.labels.as_ref().and_then(|l| l.get(INSTANCE_ID_LABEL)) {
            labels.insert(INSTANCE_ID_LABEL.into(), id.clone());
        }
        labels.extend(extra.labels);
        // The selector's labels win, as upstream: the run is found by them.
        labels.extend(self.selector_labels.clone());
        let mut annotations = BTreeMap::from([(REVISION_ANNOTATION.to_string(), self.revision.to_string())]);
        annotations.extend(extra.annotations);
        ObjectMeta {
            name: Some(name.into()),
            namespace: self.rollout.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner(self.rollout)]),
            ..Default::default()
        }
    }

    /// An argument as the templates take it: a hash or a field of the Rollout made a value.
    fn argument(&self, arg: &AnalysisRunArgument) -> Result<Argument, String> {
        let from = arg.value_from.as_ref();
        let value = if let Some(value) = &arg.value {
            value.clone()
        } else if let Some(which) = from.and_then(|f| f.pod_template_hash_value) {
            match which {
                PodTemplateHashValue::Stable => self.stable_hash.to_string(),
                PodTemplateHashValue::Latest => self.latest_hash.to_string(),
            }
        } else if let Some(field) = from.and_then(|f| f.field_ref.as_ref()) {
            field_value(&self.rollout.metadata, &field.field_path).ok_or_else(|| {
                format!(
                    "argument '{}': valueFrom.fieldRef.fieldPath {:?} is none of metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'] of the Rollout (or that label or annotation is missing)",
                    arg.name, field.field_path
                )
            })?
        } else {
            return Err(format!("argument '{}' needs a value or valueFrom", arg.name));
        };
        Ok(Argument { name: arg.name.clone(), value: Some(value), value_from: None })
    }
}

fn merged<T: Clone + PartialEq>(first: &[T], then: &[T]) -> Vec<T> {
    let mut all = first.to_vec();
    all.extend(then.iter().filter(|rule| !first.contains(rule)).cloned());
    all
}

/// The step index a run was started for (its `step-index` label).
pub fn step_index(run: &AnalysisRun) -> Option<usize> {
    run.metadata.labels.as_ref()?.get(STEP_INDEX_LABEL)?.parse().ok()
}

/// Whether `name` is `base` or a retry of it (`base.1`, `base.2`, …).
pub fn is_named_after(name: &str, base: &str) -> bool {
    name.strip_prefix(base).is_some_and(|rest| {
        rest.is_empty()
            || rest.strip_prefix('.').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}
