//! `create analysisrun --from TEMPLATE` (or `--from-global`): an AnalysisRun made from a template
//! and all it includes, with `-a NAME=VALUE` arguments, as `kubectl argo rollouts create` does.
//! Everything wrong (a missing template, an undeclared or missing argument) is said before
//! anything is created.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use rollouts_controller::analysis::args::fill_text;
use rollouts_controller::analysis::condition::Condition;
use rollouts_controller::analysis::templates::{TemplateKey, references, run_spec};
use rollouts_controller::api::{
    AnalysisRun, AnalysisRunSpec, AnalysisTemplate, AnalysisTemplateSpec, Argument, ClusterAnalysisTemplate,
};

use super::print;
use crate::client::{Cluster, Request, Verb, explain};

pub async fn create_analysis_run(
    cluster: &Cluster,
    from: TemplateKey,
    name: Option<String>,
    arguments: Vec<(String, String)>,
) -> Result<()> {
    // Every template reached from `from`; a missing one is reported by run_spec with its kind.
    let mut templates = BTreeMap::new();
    let mut pending = vec![from.clone()];
    while let Some(key) = pending.pop() {
        if templates.contains_key(&key) {
            continue;
        }
        if let Some(spec) = fetch(cluster, &key).await? {
            pending.extend(references(&spec));
            templates.insert(key, spec);
        }
    }
    let supplied: Vec<Argument> =
        arguments.into_iter().map(|(name, value)| Argument { name, value: Some(value), value_from: None }).collect();
    let spec = run_spec(std::slice::from_ref(&from), &templates, &supplied).map_err(|reason| anyhow!(reason))?;
    check_conditions(&spec)?;
    let metadata = match name {
        Some(name) => ObjectMeta { name: Some(name), ..Default::default() },
        None => ObjectMeta { generate_name: Some(format!("{}-", from.1)), ..Default::default() },
    };
    let run = AnalysisRun { metadata, spec, status: None };
    let created = cluster
        .api::<AnalysisRun>()
        .create(&PostParams::default(), &run)
        .await
        .map_err(|error| explain(error, cluster.request(Verb::Create, "analysisruns", None)))?;
    print(&format!("analysisrun.argoproj.io/{} created\n", created.name_any()))
}

/// Compiles every condition (with the arguments that have plain values filled in), so a run that
/// would end in Error at once is not created.
fn check_conditions(spec: &AnalysisRunSpec) -> Result<()> {
    let values: BTreeMap<String, String> =
        spec.args.iter().filter_map(|arg| Some((arg.name.clone(), arg.value.clone()?))).collect();
    for (index, metric) in spec.metrics.iter().enumerate() {
        for (field, source) in
            [("successCondition", &metric.success_condition), ("failureCondition", &metric.failure_condition)]
        {
            // A condition with a placeholder only known to the controller (a Secret) is checked there.
            let Some(Ok(source)) = source.as_deref().map(|source| fill_text(source, &values)) else { continue };
            Condition::compile(&source)
                .map_err(|error| anyhow!("metrics[{index}] ({}): {field} {source:?}: {error}", metric.name))?;
        }
    }
    Ok(())
}

/// A template's spec, `None` when it doesn't exist.
async fn fetch(cluster: &Cluster, key: &TemplateKey) -> Result<Option<AnalysisTemplateSpec>> {
    let (cluster_scope, name) = key;
    if *cluster_scope {
        let api: Api<ClusterAnalysisTemplate> = Api::all(cluster.client.clone());
        let request = Request::new(Verb::Get, "clusteranalysistemplates", Some(name), None);
        return Ok(api.get_opt(name).await.map_err(|e| explain(e, request))?.map(|t| t.spec.template));
    }
    let api: Api<AnalysisTemplate> = cluster.api();
    let resource = AnalysisTemplate::plural(&()).into_owned();
    let template =
        api.get_opt(name).await.map_err(|e| explain(e, cluster.request(Verb::Get, &resource, Some(name))))?;
    Ok(template.map(|t| t.spec))
}
