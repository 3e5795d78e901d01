//! APISIX header routes: for each `setHeaderRoute` in force, an ApisixRoute named like it, owned
//! by the Rollout, holding the managed rules of the main route with only their canary backend,
//! one priority above the original and the headers as `match.exprs`. Other rules of the main
//! route are not copied (upstream copies them, doubling their routes in APISIX). Rule names are
//! kept: APISIX names a route `<namespace>_<ApisixRoute>_<rule>`, so they are unique already,
//! and metrics keep the rule's name.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, TypeMeta};
use serde_json::{Value, json};

use super::super::super::objects::{controlled_by, owner};
use super::{KIND, backend_index, rule_index};
use crate::api::{HeaderRoutingMatch, SetHeaderRoute};
use crate::plan::routers::HeaderRoutes;
use crate::plan::{Action, Observed};

/// One expr per header match, as APISIX's `match.exprs` reads them; a prefix is an anchored
/// regular expression of the escaped prefix.
pub(super) fn exprs(matches: &[HeaderRoutingMatch]) -> Vec<Value> {
    let mut exprs = Vec::new();
    for header in matches {
        let subject = json!({"scope": "Header", "name": header.header_name});
        let value = &header.header_value;
        let prefix = value.prefix.as_deref().map(|p| format!("^{}.*", regex::escape(p)));
        for (op, value) in [("Equal", value.exact.clone()), ("RegexMatch", value.regex.clone()), ("RegexMatch", prefix)]
        {
            if let Some(value) = value {
                exprs.push(json!({"subject": subject, "op": op, "value": value}));
            }
        }
    }
    exprs
}

/// The spec of a header route: `main`'s, its stream routes left out and its HTTP rules the
/// managed ones, each sending only to the canary backend (weight 100) one priority above the
/// original, matching the headers instead of the original's exprs.
pub(super) fn header_spec(main: &Value, rules: &[String], canary: &str, matches: &[HeaderRoutingMatch]) -> Value {
    let http: Vec<Value> = rules
        .iter()
        .filter_map(|rule| {
            let mut copy = main["http"][rule_index(main, rule)?].clone();
            let mut backend = copy["backends"][backend_index(&copy, canary)?].clone();
            backend["weight"] = json!(100);
            copy["backends"] = json!([backend]);
            if let Some(rule) = copy.as_object_mut() {
                rule.remove("upstreams");
            }
            copy["priority"] = json!(copy["priority"].as_i64().unwrap_or(0) + 1);
            copy["match"]["exprs"] = json!(exprs(matches));
            Some(copy)
        })
        .collect();
    let mut spec = main.clone();
    if let Some(fields) = spec.as_object_mut() {
        fields.remove("stream");
    }
    spec["http"] = json!(http);
    spec
}

fn wanted_header<'r>(routes: &HeaderRoutes<'r>, name: &str) -> Option<&'r SetHeaderRoute> {
    routes.wanted.iter().copied().find(|r| r.name == name && r.matches.as_ref().is_some_and(|m| !m.is_empty()))
}

/// Creates or patches each wanted header route that differs; deletes the managed routes not
/// wanted that exist and are this Rollout's. Objects another owner holds are left alone
/// (`configured` reports them).
pub(super) fn writes(
    observed: &Observed,
    (route, rules): (&DynamicObject, &[String]),
    canary: &str,
    routes: &HeaderRoutes,
) -> Vec<Action> {
    let namespace = route.metadata.namespace.clone().unwrap_or_default();
    let main_name = route.metadata.name.as_deref().unwrap_or_default();
    let live = |name: &str| observed.route_object(KIND, &namespace, name).ok().flatten();
    let ours = |object: &DynamicObject| controlled_by(&object.metadata, &observed.rollout);
    let mut actions = Vec::new();
    let wanted: Vec<&str> = routes.wanted.iter().map(|r| r.name.as_str()).collect();
    let others = routes.managed.iter().copied().filter(|name| !wanted.contains(name));
    for name in wanted.iter().copied().chain(others).filter(|name| *name != main_name) {
        let existing = live(name);
        let Some(header) = wanted_header(routes, name) else {
            if let Some(object) = existing.filter(|o| ours(o))
                && let Some(uid) = object.metadata.uid.clone()
            {
                actions.push(Action::DeleteRoute { kind: KIND, namespace: namespace.clone(), name: name.into(), uid });
            }
            continue;
        };
        let spec = header_spec(&route.data["spec"], rules, canary, header.matches.as_deref().unwrap_or_default());
        match existing {
            None => actions.push(Action::CreateRoute {
                kind: KIND,
                object: Box::new(new_route(observed, &namespace, name, spec)),
            }),
            Some(object) if ours(object) && object.data["spec"] != spec => actions.push(Action::PatchRoute {
                kind: KIND,
                namespace: namespace.clone(),
                name: name.to_string(),
                // The spec replaced whole, on the object checked as ours.
                patch: vec![
                    json!({"op": "test", "path": "/metadata/uid", "value": object.metadata.uid}),
                    json!({"op": "add", "path": "/spec", "value": spec}),
                ],
                canary_weight: None,
            }),
            Some(_) => {}
        }
    }
    actions
}

fn new_route(observed: &Observed, namespace: &str, name: &str, spec: Value) -> DynamicObject {
    let (group, version, kind, _) = KIND.gvk();
    DynamicObject {
        types: Some(TypeMeta { api_version: format!("{group}/{version}"), kind: kind.into() }),
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            owner_references: Some(vec![owner(&observed.rollout)]),
            ..ObjectMeta::default()
        },
        data: json!({"spec": spec}),
    }
}
