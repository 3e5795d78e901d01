//! The conditions Argo's documentation and users' AnalysisTemplates write.

use serde_json::json;

use super::{check_table, json};
use crate::analysis::condition::Value;

fn numbers(values: &[f64]) -> Value {
    Value::List(values.iter().copied().map(Value::Number).collect())
}

#[test]
fn prometheus_vectors() {
    check_table(&[
        ("result[0] >= 0.95", json(json!([0.98])), true),
        ("result[0] >= 0.95", json(json!([0.9])), false),
        ("result[0] >= 0.95", json(json!([0.95, 0.1])), true),
        ("len(result) > 0 && result[0] >= 0.95", json(json!([])), false),
        ("len(result) > 0 && result[0] >= 0.95", json(json!([0.99])), true),
        ("len(result) == 0 || result[0] >= 0.95", json(json!([])), true),
        ("len(result) == 0 || result[0] >= 0.95", json(json!([0.5])), false),
        ("isNaN(result[0]) || result[0] >= 0.95", numbers(&[f64::NAN]), true),
        ("isNaN(result[0]) || result[0] >= 0.95", numbers(&[0.5]), false),
        ("!isNaN(result[0]) && result[0] >= 0.95", numbers(&[f64::NAN]), false),
        ("isInf(result[0])", numbers(&[f64::INFINITY]), true),
        ("isInf(result[0])", numbers(&[f64::NEG_INFINITY]), true),
        ("isInf(result[0])", numbers(&[1e308]), false),
        ("default(result[0], 0) >= 0.9", json(json!([])), false),
        ("default(result[0], 1) >= 0.9", json(json!([])), true),
        ("default(result[0], 0) >= 0.9", json(json!([0.95])), true),
        ("isNil(result[0])", json(json!([])), true),
        ("isNil(result[0])", json(json!([0])), false),
        ("all(result, {# > 0.9})", json(json!([0.95, 0.99])), true),
        ("all(result, {# > 0.9})", json(json!([0.95, 0.5])), false),
        ("all(result, {# > 0.9})", json(json!([])), true),
        ("any(result, # < 0.1)", json(json!([0.5, 0.05])), true),
        ("any(result, # < 0.1)", json(json!([0.5])), false),
        ("none(result, # < 0.1)", json(json!([0.5])), true),
        ("one(result, # < 0.1)", json(json!([0.05, 0.5, 0.01])), false),
        ("result[0] >= 99 and result[0] <= 100 or false", json(json!([99.5])), true),
        ("result[0] >= 99 and result[0] <= 100 or false", json(json!([100.5])), false),
        ("not (result[0] < 0.9)", json(json!([0.95])), true),
        ("not (result[0] < 0.9)", json(json!([0.5])), false),
        ("result[0] * 100 > 95", json(json!([0.96])), true),
        ("result[0] / result[1] < 2", json(json!([3, 2])), true),
        ("result[0] / result[1] < 2", json(json!([5, 2])), false),
        ("result[-1] == 3", json(json!([1, 2, 3])), true),
        ("len(result) == 2", json(json!([1, 2])), true),
    ]);
}

#[test]
fn prometheus_scalars() {
    check_table(&[
        ("result >= 0.95", json(json!(0.96)), true),
        ("result >= 0.95", json(json!(0.5)), false),
        ("result < 0.05", json(json!(0.01)), true),
        ("isNaN(result) || result >= 0.95", Value::Number(f64::NAN), true),
        ("isNaN(result) || result >= 0.95", json(json!(0.5)), false),
        ("default(result, 0) >= 0.9", Value::Nil, false),
        ("default(result, 1) >= 0.9", Value::Nil, true),
        ("default(result, 0) >= 0.9", json(json!(0.95)), true),
        ("isNil(result)", Value::Nil, true),
        ("isNil(result)", json(json!(0)), false),
        ("result == nil", Value::Nil, true),
    ]);
}

#[test]
fn web_and_job_results() {
    check_table(&[
        ("asInt(result) == 200", json(json!("200")), true),
        ("asInt(result) == 200", json(json!(200)), true),
        ("asInt(result) == 200", json(json!("404")), false),
        ("asFloat(result) < 0.5", json(json!("0.25")), true),
        ("asFloat(result) < 0.5", json(json!("0.75")), false),
        ("result == \"ok\"", json(json!("ok")), true),
        ("result == 'ok'", json(json!("fail")), false),
        ("result.data.ok == true", json(json!({"data": {"ok": true}})), true),
        ("result.data.ok == true", json(json!({"data": {"ok": false}})), false),
        ("result.data.ok", json(json!({"data": {"ok": true}})), true),
        ("result.status == \"healthy\"", json(json!({"status": "healthy"})), true),
        ("result.status == \"healthy\"", json(json!({"status": "degraded"})), false),
        ("result[\"status\"] == \"healthy\"", json(json!({"status": "healthy"})), true),
        ("result.items[0].value > 1", json(json!({"items": [{"value": 2}]})), true),
        ("result.items[0].value > 1", json(json!({"items": [{"value": 0.5}]})), false),
        ("all(result.items, {#.value > 1})", json(json!({"items": [{"value": 2}, {"value": 3}]})), true),
        ("all(result.items, .value > 1)", json(json!({"items": [{"value": 2}, {"value": 0}]})), false),
        ("result.missing == nil", json(json!({})), true),
        ("result?.data?.ok == nil", Value::Nil, true),
        ("result?.data.ok == nil", Value::Nil, true),
        ("default(result.data.ok, false)", json(json!({})), false),
        ("isNil(result.data.ok)", json(json!({})), true),
        ("result.count > 0 ? result.errors / result.count < 0.01 : true", json(json!({"count": 0})), true),
        ("(result.count ?? 0) == 0", json(json!({})), true),
    ]);
}
