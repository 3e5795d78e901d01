//! Header rules (`setHeaderRoute`): for each header route wanted, one rule per split rule, named
//! `<name>` then `<name>-1`, `<name>-2`…, sending the requests whose headers match to the canary
//! Service alone. It copies the split rule's matches (the headers added to each), filters and
//! timeouts, and the canary backendRef's port; it is not a split rule, so setting weights never
//! reaches it (plugin #158). The managed rules are compared with the wanted ones as the apiserver
//! stores them (its defaults filled in), and replaced together when they differ: never added
//! twice (plugin #151), and put back after a restart since nothing is remembered (plugin #191).
//! They go before the split rules: header matches already make them win over them, and the list
//! order, the last tie-breaker, agrees.

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::{Backends, Role, backend_refs, is_managed, rules};
use crate::api::{HeaderRoutingMatch, RouteKind, SetHeaderRoute};

/// The JSON Patch that replaces the managed rules of `object` by those `wanted` asks for; empty
/// when they are in place. The managed rules are removed (each guarded by a test of its name),
/// and the wanted ones inserted before the first split rule, guarded by tests of its backendRefs'
/// names: had this controller inserted them already and its cache not caught up yet, a header
/// rule would be found there instead and the patch fail, rather than add them twice. A weight
/// written meanwhile doesn't fail it.
pub(super) fn patch(
    object: &DynamicObject,
    kind: RouteKind,
    (backends, split): (&Backends, &[usize]),
    wanted: &[&SetHeaderRoute],
    managed: &[&str],
) -> Vec<Value> {
    let rules = rules(object);
    let wanted = wanted_rules(rules, (backends, split), wanted);
    let live: Vec<(usize, &Value)> = rules.iter().enumerate().filter(|(_, rule)| is_managed(rule, managed)).collect();
    let in_place = live.len() == wanted.len()
        && live.iter().zip(&wanted).all(|((_, live), wanted)| defaulted(live, kind) == defaulted(wanted, kind));
    if in_place {
        return Vec::new();
    }
    let mut patch = Vec::new();
    // From the highest index down, so each removal leaves the indices still to remove in place.
    for (index, rule) in live.iter().rev() {
        let path = format!("/spec/rules/{index}");
        patch.push(json!({"op": "test", "path": format!("{path}/name"), "value": rule["name"]}));
        patch.push(json!({"op": "remove", "path": path}));
    }
    let Some(&first) = split.first().filter(|_| !wanted.is_empty()) else { return patch };
    let at = first - live.iter().filter(|(index, _)| *index < first).count();
    patch.extend(backends.name_tests(&rules[first], &format!("/spec/rules/{at}")));
    for (offset, rule) in wanted.into_iter().enumerate() {
        patch.push(json!({"op": "add", "path": format!("/spec/rules/{}", at + offset), "value": rule}));
    }
    patch
}

/// The rules `wanted` asks for, in order. A header route without `match` asks for none.
fn wanted_rules(rules: &[Value], (backends, split): (&Backends, &[usize]), wanted: &[&SetHeaderRoute]) -> Vec<Value> {
    let mut out = Vec::new();
    for route in wanted {
        let headers: Vec<Value> = route.matches.iter().flatten().filter_map(header_match).collect();
        if headers.is_empty() {
            continue;
        }
        for (n, &index) in split.iter().enumerate() {
            let name = if n == 0 { route.name.clone() } else { format!("{}-{n}", route.name) };
            out.extend(header_rule(&rules[index], name, &headers, backends));
        }
    }
    out
}

/// The rule sending what `source` matches, when the headers match too, to the canary Service.
fn header_rule(source: &Value, name: String, headers: &[Value], backends: &Backends) -> Option<Value> {
    let canary = backend_refs(source).iter().find(|b| backends.role(b) == Some(Role::Canary))?;
    let mut backend = json!({"group": "", "kind": "Service", "name": backends.canary});
    for key in ["namespace", "port"] {
        if let Some(value) = canary.get(key) {
            backend[key] = value.clone();
        }
    }
    let matches: Vec<Value> = match source.get("matches").and_then(Value::as_array).filter(|m| !m.is_empty()) {
        Some(matches) => matches.iter().map(|m| with_headers(m, headers)).collect(),
        None => vec![json!({"headers": headers})],
    };
    let mut rule = json!({"name": name, "matches": matches, "backendRefs": [backend]});
    // The same requests behave the same but for where they go.
    for key in ["filters", "timeouts"] {
        if let Some(value) = source.get(key) {
            rule[key] = value.clone();
        }
    }
    Some(rule)
}

/// A match with `headers` added; a header of the same name (case-insensitive) is replaced, since
/// the apiserver takes each name once.
fn with_headers(source: &Value, headers: &[Value]) -> Value {
    let name = |header: &Value| header.get("name").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let ours: Vec<Option<String>> = headers.iter().map(name).collect();
    let mut all: Vec<Value> = source.get("headers").and_then(Value::as_array).cloned().unwrap_or_default();
    all.retain(|header| !ours.contains(&name(header)));
    all.extend(headers.iter().cloned());
    let mut with = source.clone();
    with["headers"] = Value::Array(all);
    with
}

/// A header match of HTTPRoute and GRPCRoute (the same shape): exact, or a regular expression
/// (a prefix becomes one). Validation makes sure one of the three is set.
fn header_match(header: &HeaderRoutingMatch) -> Option<Value> {
    let value = &header.header_value;
    let (kind, text) = match (&value.exact, &value.prefix, &value.regex) {
        (Some(exact), _, _) => ("Exact", exact.clone()),
        (None, Some(prefix), _) => ("RegularExpression", format!("{}.*", escape(prefix))),
        (None, None, Some(regex)) => ("RegularExpression", regex.clone()),
        (None, None, None) => return None,
    };
    Some(json!({"name": header.header_name, "type": kind, "value": text}))
}

/// `text` as a regular expression matching itself. Only the metacharacters every dialect shares
/// are escaped (RE2, PCRE and POSIX ERE all take these escapes).
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A rule with the defaults the HTTPRoute and GRPCRoute CRDs give, so a rule compares equal to
/// itself read back from the apiserver.
fn defaulted(rule: &Value, kind: RouteKind) -> Value {
    fn fill(object: Option<&mut Value>, defaults: &[(&str, Value)]) {
        if let Some(Value::Object(map)) = object {
            for (key, value) in defaults {
                map.entry(*key).or_insert_with(|| value.clone());
            }
        }
    }
    fn each<'v>(value: &'v mut Value, key: &str) -> impl Iterator<Item = &'v mut Value> {
        value.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
    }
    let mut rule = rule.clone();
    for backend in each(&mut rule, "backendRefs") {
        fill(Some(backend), &[("group", json!("")), ("kind", json!("Service")), ("weight", json!(1))]);
    }
    for matched in each(&mut rule, "matches") {
        if kind == RouteKind::HttpRoute {
            fill(Some(&mut *matched), &[("path", json!({}))]);
            fill(matched.get_mut("path"), &[("type", json!("PathPrefix")), ("value", json!("/"))]);
        }
        fill(matched.get_mut("method"), &[("type", json!("Exact"))]);
        for header in each(matched, "headers") {
            fill(Some(header), &[("type", json!("Exact"))]);
        }
    }
    rule
}
