//! AnalysisTemplates (and ClusterAnalysisTemplates) made into an AnalysisRun's spec: nested
//! `templates` followed, metrics, arguments and rules put together, supplied arguments merged.
//! Pure: the caller fetches the templates (`references` says which) and hands them over.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{AnalysisRunSpec, AnalysisTemplateSpec, Argument, TemplateRef};

/// A template by where it lives: (cluster-scoped, name).
pub type TemplateKey = (bool, String);

pub fn key(reference: &TemplateRef) -> TemplateKey {
    (reference.cluster_scope, reference.template_name.clone())
}

/// How the API names a template, for messages.
pub fn describe(key: &TemplateKey) -> String {
    let kind = if key.0 { "ClusterAnalysisTemplate" } else { "AnalysisTemplate" };
    format!("{kind} '{}'", key.1)
}

/// The templates `spec` includes, directly.
pub fn references(spec: &AnalysisTemplateSpec) -> Vec<TemplateKey> {
    spec.templates.iter().map(key).collect()
}

/// The run spec of the templates `roots` (and all they include, each once), with `supplied`
/// arguments filling or overriding theirs. `templates` holds every template reached.
pub fn run_spec(
    roots: &[TemplateKey],
    templates: &BTreeMap<TemplateKey, AnalysisTemplateSpec>,
    supplied: &[Argument],
) -> Result<AnalysisRunSpec, String> {
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for root in roots {
        visit(root, templates, &mut seen, &mut order)?;
    }
    let mut spec = AnalysisRunSpec::default();
    for template in order.iter().map(|key| &templates[key]) {
        for metric in &template.metrics {
            if spec.metrics.iter().any(|m| m.name == metric.name) {
                return Err(format!("two metrics have the same name '{}'", metric.name));
            }
            spec.metrics.push(metric.clone());
        }
        for arg in &template.args {
            add_argument(&mut spec.args, arg)?;
        }
        for rule in &template.dry_run {
            if !spec.dry_run.contains(rule) {
                spec.dry_run.push(rule.clone());
            }
        }
        for rule in &template.measurement_retention {
            if !spec.measurement_retention.contains(rule) {
                spec.measurement_retention.push(rule.clone());
            }
        }
    }
    for arg in supplied {
        let Some(declared) = spec.args.iter_mut().find(|a| a.name == arg.name) else {
            let declared: Vec<&str> = spec.args.iter().map(|a| a.name.as_str()).collect();
            return Err(format!(
                "argument '{}' is not declared by the templates (they declare: {})",
                arg.name,
                declared.join(", ")
            ));
        };
        declared.value = arg.value.clone();
        declared.value_from = arg.value_from.clone();
    }
    if let Some(missing) = spec.args.iter().find(|a| a.value.is_none() && a.value_from.is_none()) {
        return Err(format!("argument '{}' needs a value", missing.name));
    }
    Ok(spec)
}

/// Depth first, each template once (a template included twice, or in a cycle, counts once).
fn visit(
    key: &TemplateKey,
    templates: &BTreeMap<TemplateKey, AnalysisTemplateSpec>,
    seen: &mut BTreeSet<TemplateKey>,
    order: &mut Vec<TemplateKey>,
) -> Result<(), String> {
    if !seen.insert(key.clone()) {
        return Ok(());
    }
    let template = templates.get(key).ok_or_else(|| format!("{} not found", describe(key)))?;
    order.push(key.clone());
    for nested in references(template) {
        visit(&nested, templates, seen, order)?;
    }
    Ok(())
}

/// Adds a template's argument; the same name twice must not hold two different values.
fn add_argument(args: &mut Vec<Argument>, arg: &Argument) -> Result<(), String> {
    let Some(existing) = args.iter_mut().find(|a| a.name == arg.name) else {
        args.push(arg.clone());
        return Ok(());
    };
    match (&existing.value, &arg.value) {
        (Some(a), Some(b)) if a != b => {
            Err(format!("Argument `{}` specified multiple times with different values: '{a}', '{b}'", arg.name))
        }
        (None, Some(_)) => {
            *existing = arg.clone();
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(spec: serde_json::Value) -> AnalysisTemplateSpec {
        serde_json::from_value(spec).unwrap()
    }

    fn metric(name: &str) -> serde_json::Value {
        json!({"name": name, "provider": {"web": {"url": "http://x/{{args.service}}"}}})
    }

    fn library() -> BTreeMap<TemplateKey, AnalysisTemplateSpec> {
        BTreeMap::from([
            (
                (false, "checks".to_string()),
                template(json!({
                    "templates": [{"templateName": "rate"}, {"templateName": "load", "clusterScope": true}],
                    "dryRun": [{"metricName": "load"}]
                })),
            ),
            (
                (false, "rate".to_string()),
                template(json!({"args": [{"name": "service"}], "metrics": [metric("rate")]})),
            ),
            (
                (true, "load".to_string()),
                template(json!({
                    "args": [{"name": "service"}, {"name": "rps", "value": "10"}],
                    "metrics": [metric("load")],
                    // A cycle back to the root counts once.
                    "templates": [{"templateName": "checks"}]
                })),
            ),
        ])
    }

    fn supplied(name: &str, value: &str) -> Argument {
        Argument { name: name.into(), value: Some(value.into()), value_from: None }
    }

    #[test]
    fn nested_templates_are_followed_once_and_arguments_merged() {
        let spec = run_spec(&[(false, "checks".into())], &library(), &[supplied("service", "web")]).unwrap();
        let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["rate", "load"]);
        let args: Vec<(&str, Option<&str>)> = spec.args.iter().map(|a| (a.name.as_str(), a.value.as_deref())).collect();
        assert_eq!(args, [("service", Some("web")), ("rps", Some("10"))]);
        assert_eq!(spec.dry_run.len(), 1);
    }

    #[test]
    fn what_can_not_be_made_into_a_run_says_why() {
        let library = library();
        let cases = [
            (vec![(false, "missing".to_string())], vec![], "AnalysisTemplate 'missing' not found"),
            (vec![(true, "rate".to_string())], vec![], "ClusterAnalysisTemplate 'rate' not found"),
            (vec![(false, "rate".to_string())], vec![], "argument 'service' needs a value"),
            (
                vec![(false, "rate".to_string())],
                vec![supplied("servce", "web")],
                "argument 'servce' is not declared by the templates (they declare: service)",
            ),
            (
                vec![(false, "rate".to_string()), (false, "rate2".to_string())],
                vec![supplied("service", "web")],
                "two metrics have the same name 'rate'",
            ),
        ];
        let mut with_duplicate = library.clone();
        with_duplicate.insert((false, "rate2".into()), library[&(false, "rate".to_string())].clone());
        for (roots, args, expected) in cases {
            assert_eq!(run_spec(&roots, &with_duplicate, &args).unwrap_err(), expected);
        }
        let conflicting = BTreeMap::from([
            (
                (false, "a".to_string()),
                template(json!({"args": [{"name": "x", "value": "1"}], "templates": [{"templateName": "b"}]})),
            ),
            ((false, "b".to_string()), template(json!({"args": [{"name": "x", "value": "2"}]}))),
        ]);
        assert_eq!(
            run_spec(&[(false, "a".into())], &conflicting, &[]).unwrap_err(),
            "Argument `x` specified multiple times with different values: '1', '2'"
        );
    }
}
