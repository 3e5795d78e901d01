//! A Rollout's analysis as observed: the AnalysisRuns it controls, and the templates its steps and
//! background analysis reach, nested ones too, each registered so a change to it wakes the Rollout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::api::Api;

use super::lookup;
use crate::analysis::templates::{self, TemplateKey};
use crate::api::{AnalysisRun, AnalysisTemplate, AnalysisTemplateSpec, ClusterAnalysisTemplate, Rollout};
use crate::cache::{Key, key_of};
use crate::context::{Context, Error, Lazy};

/// The runs `rollout` controls, by (creationTimestamp, name).
pub(super) fn runs(ctx: &Context, rollout: &Rollout) -> Vec<AnalysisRun> {
    let uid = rollout.metadata.uid.as_deref().unwrap_or_default();
    let mut runs: Vec<AnalysisRun> = ctx.analysis_runs.controlled_by(uid).iter().map(|run| (**run).clone()).collect();
    let order = |run: &AnalysisRun| (run.metadata.creation_timestamp.as_ref().map(|t| t.0), run.metadata.name.clone());
    runs.sort_by_cached_key(order);
    runs
}

/// The templates the steps and the background analysis of `rollout` name, each once.
fn roots(rollout: &Rollout) -> Vec<TemplateKey> {
    let Some(canary) = &rollout.spec.strategy.canary else { return Vec::new() };
    let steps = canary.steps.iter().flatten().filter_map(|step| step.analysis.as_ref());
    let background = canary.analysis.iter().map(|background| &background.analysis);
    let keys: BTreeSet<TemplateKey> = steps.chain(background).flat_map(|a| &a.templates).map(templates::key).collect();
    keys.into_iter().collect()
}

/// The templates reached from some roots, found a level at a time: the caller looks each level up
/// (and says it references it) before the templates that level includes are known.
#[derive(Default)]
struct Reach {
    found: BTreeMap<TemplateKey, AnalysisTemplateSpec>,
    known: BTreeSet<TemplateKey>,
    next: Vec<TemplateKey>,
}

impl Reach {
    fn new(roots: impl IntoIterator<Item = TemplateKey>) -> Self {
        let mut reach = Reach::default();
        reach.queue(roots);
        reach
    }

    fn queue(&mut self, keys: impl IntoIterator<Item = TemplateKey>) {
        for key in keys {
            if self.known.insert(key.clone()) {
                self.next.push(key);
            }
        }
    }

    /// Every template reached so far, whether it exists or not.
    fn known(&self) -> &BTreeSet<TemplateKey> {
        &self.known
    }

    /// The templates to look up next; none once every template reached has been.
    fn take_next(&mut self) -> Vec<TemplateKey> {
        std::mem::take(&mut self.next)
    }

    /// What looking up `key` found (`None`: it doesn't exist); the templates it includes come next.
    fn found(&mut self, key: TemplateKey, spec: Option<AnalysisTemplateSpec>) {
        if let Some(spec) = spec {
            self.queue(templates::references(&spec));
            self.found.insert(key, spec);
        }
    }

    fn into_found(self) -> BTreeMap<TemplateKey, AnalysisTemplateSpec> {
        self.found
    }
}

/// The templates `rollout` reaches, each looked up once, a level at a time. A level is registered
/// before it is looked up: the caches keep only referenced templates.
pub(super) async fn templates(
    ctx: &Arc<Context>,
    rollout: &Rollout,
) -> Result<BTreeMap<TemplateKey, AnalysisTemplateSpec>, Error> {
    let rollout_key = key_of(rollout);
    let mut reach = Reach::new(roots(rollout));
    loop {
        let next = reach.take_next();
        if next.is_empty() {
            break;
        }
        register(ctx, &rollout_key, reach.known(), true);
        for key in next {
            let spec = template(ctx, &rollout_key.0, &key).await?;
            reach.found(key, spec);
        }
    }
    register(ctx, &rollout_key, reach.known(), false);
    Ok(reach.into_found())
}

/// Records that `rollout` references the templates `reached`. With `keep`, also what it
/// referenced before: dropping a nested template only to reference it again a level later would
/// make the cache's answer for it unconfirmed, and cost a GET.
fn register(ctx: &Context, rollout: &Key, reached: &BTreeSet<TemplateKey>, keep: bool) {
    let scopes = [(&ctx.analysis_templates.refs, false), (&ctx.cluster_analysis_templates.refs, true)];
    for (refs, cluster) in scopes {
        let namespace = if cluster { "" } else { rollout.0.as_str() };
        let mut targets: BTreeSet<Key> =
            reached.iter().filter(|key| key.0 == cluster).map(|key| (namespace.to_string(), key.1.clone())).collect();
        if keep {
            targets.extend(refs.targets(rollout));
        }
        refs.set(rollout, targets.into_iter().collect());
    }
}

async fn template(
    ctx: &Arc<Context>,
    namespace: &str,
    (cluster, name): &TemplateKey,
) -> Result<Option<AnalysisTemplateSpec>, Error> {
    let client = ctx.client.clone();
    if !cluster {
        ctx.watch_kind(Lazy::AnalysisTemplates);
        let api = Api::<AnalysisTemplate>::namespaced(client, namespace);
        let key = (namespace.to_string(), name.clone());
        return Ok(lookup(&ctx.analysis_templates, api, &key).await?.map(|template| template.spec.clone()));
    }
    let api = Api::<ClusterAnalysisTemplate>::all(client);
    let found = if ctx.settings.namespace.is_some() {
        // One namespace's Role can't list a cluster-scoped kind: read it by name, each time (a
        // ClusterRole granting `get` is needed; without it, this fails as forbidden).
        api.get_opt(name).await?.map(Arc::new)
    } else {
        ctx.watch_kind(Lazy::ClusterAnalysisTemplates);
        lookup(&ctx.cluster_analysis_templates, api, &(String::new(), name.clone())).await?
    };
    Ok(found.map(|template| template.spec.template.clone()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(spec: serde_json::Value) -> AnalysisTemplateSpec {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn the_roots_are_the_steps_and_the_background_analysis_each_once() {
        let rollout: Rollout = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"strategy": {"canary": {
                "steps": [
                    {"analysis": {"templates": [{"templateName": "rate"}, {"templateName": "load", "clusterScope": true}]}},
                    {"pause": {}},
                    {"analysis": {"templates": [{"templateName": "rate"}]}}
                ],
                "analysis": {"templates": [{"templateName": "smoke"}], "startingStep": 1}
            }}}
        }))
        .unwrap();
        let expected = [(false, "rate"), (false, "smoke"), (true, "load")].map(|(c, n)| (c, n.to_string()));
        assert_eq!(roots(&rollout), expected);
    }

    #[test]
    fn nested_templates_are_reached_a_level_at_a_time_each_once() {
        let key = |cluster: bool, name: &str| (cluster, name.to_string());
        let library = BTreeMap::from([
            (
                key(false, "checks"),
                template(
                    json!({"templates": [{"templateName": "rate"}, {"templateName": "load", "clusterScope": true}]}),
                ),
            ),
            (key(false, "rate"), template(json!({"templates": [{"templateName": "gone"}]}))),
            // A cycle back to the root, and a template included twice.
            (key(true, "load"), template(json!({"templates": [{"templateName": "checks"}, {"templateName": "rate"}]}))),
        ]);
        let mut reach = Reach::new([key(false, "checks"), key(false, "checks")]);
        let mut levels = Vec::new();
        loop {
            let next = reach.take_next();
            if next.is_empty() {
                break;
            }
            for key in &next {
                reach.found(key.clone(), library.get(key).cloned());
            }
            levels.push(next);
        }
        assert_eq!(
            levels,
            [vec![key(false, "checks")], vec![key(false, "rate"), key(true, "load")], vec![key(false, "gone")]]
        );
        assert_eq!(
            reach.known().len(),
            4,
            "the missing one is known, so it is registered and its creation wakes the Rollout"
        );
        assert_eq!(
            reach.into_found().into_keys().collect::<Vec<_>>(),
            [key(false, "checks"), key(false, "rate"), key(true, "load")]
        );
    }
}
