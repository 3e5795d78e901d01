//! expr's semantics: literals, precedence, operators, builtins, and how values print.

use serde_json::json;

use super::{check_table, evaluate, json};
use crate::analysis::condition::{Condition, Value};

#[test]
fn literals() {
    check_table(&[
        ("1e3 == 1000", Value::Nil, true),
        ("1.5e-3 == 0.0015", Value::Nil, true),
        (".5 == 0.5", Value::Nil, true),
        ("1_000 == 1000", Value::Nil, true),
        ("0x1F == 31 && 0o17 == 15 && 0b101 == 5", Value::Nil, true),
        ("1 == 1.0", Value::Nil, true),
        ("'single' == \"single\"", Value::Nil, true),
        ("\"a\\n\\t\\\"\\\\\" == `a\n\t\"\\`", Value::Nil, true),
        ("\"\\u00e9\\x41\\101\" == \"éAA\"", Value::Nil, true),
        ("`raw \\n` == 'raw \\\\n'", Value::Nil, true),
        ("[1, 'a', nil, true,] == result", json(json!([1, "a", null, true])), true),
        ("[] == result", json(json!([])), true),
        ("nil == nil", Value::Nil, true),
        ("true != false", Value::Nil, true),
    ]);
}

#[test]
fn precedence_and_associativity() {
    check_table(&[
        ("1 + 2 * 3 == 7", Value::Nil, true),
        ("(1 + 2) * 3 == 9", Value::Nil, true),
        ("10 - 4 - 3 == 3", Value::Nil, true),
        ("16 / 4 / 2 == 2", Value::Nil, true),
        ("2 ** 3 ** 2 == 512", Value::Nil, true),
        ("2 ^ 10 == 1024", Value::Nil, true),
        ("-2 ** 2 == -4", Value::Nil, true),
        ("-3 * 2 == -6", Value::Nil, true),
        ("7 % 4 == 3 && -7 % 4 == -3", Value::Nil, true),
        ("7 / 2 == 3.5", Value::Nil, true),
        ("true || false && false", Value::Nil, true),
        ("(true || false) && false", Value::Nil, false),
        ("!false && true", Value::Nil, true),
        ("not true == false", Value::Nil, true),
        // expr reads `1 < 2 == true` as `1 < 2 && 2 == true`.
        ("1 < 2 == true", Value::Nil, false),
        ("0 < result < 1", json(json!(0.5)), true),
        ("0 < result < 1", json(json!(1.5)), false),
        ("0 <= result[0] <= result[1]", json(json!([0.5, 0.5])), true),
        ("(true ? 1 : 2) == 1", Value::Nil, true),
        ("(false ? 1 : true ? 2 : 3) == 2", Value::Nil, true),
        ("(result ?? 2) == 2", Value::Nil, true),
        ("1 + result ?? 2 == 3", Value::Nil, true),
        ("(result?.a ?? result?.b ?? 3) == 3", Value::Nil, true),
    ]);
}

#[test]
fn comparisons_and_membership() {
    check_table(&[
        ("result == 1", json(json!("1")), false),
        ("result != 1", json(json!("1")), true),
        ("result == [1, 2]", json(json!([1.0, 2.0])), true),
        ("result == result", Value::Number(f64::NAN), false),
        ("result != result", Value::Number(f64::NAN), true),
        ("result < 1 || result >= 1", Value::Number(f64::NAN), false),
        ("\"abc\" < \"abd\" && \"b\" > \"abc\"", Value::Nil, true),
        ("2 in result", json(json!([1, 2])), true),
        ("3 in result", json(json!([1, 2])), false),
        ("3 not in result", json(json!([1, 2])), true),
        ("'a' in result", json(json!({"a": 1})), true),
        ("'b' not in result", json(json!({"a": 1})), true),
        ("1 in result", Value::Nil, false),
        ("result contains 'ell'", json(json!("hello")), true),
        ("result not contains 'x'", json(json!("hello")), true),
        ("result startsWith 'he' && result endsWith 'lo'", json(json!("hello")), true),
        ("result not startsWith 'lo'", json(json!("hello")), true),
    ]);
}

#[test]
fn arithmetic_and_strings() {
    check_table(&[
        ("result / 0 > 1e308", json(json!(1)), true),
        ("isNaN(0 / 0) && isInf(-1 / 0)", Value::Nil, true),
        ("isNaN(result % 0)", json(json!(5)), true),
        ("'a' + 'b' == 'ab'", Value::Nil, true),
        ("result.name + '-' + result.id == 'x-1'", json(json!({"name": "x", "id": "1"})), true),
        ("-result == -2 && +result == 2", json(json!(2)), true),
        ("result[1.9] == 'b'", json(json!(["a", "b"])), true),
        ("'abc'[1] == 'b' && 'abc'[-1] == 'c'", Value::Nil, true),
        ("result[len(result) - 1] == 3", json(json!([1, 2, 3])), true),
    ]);
}

#[test]
fn short_circuits() {
    check_table(&[
        ("false && result[5] > 1", json(json!([])), false),
        ("true || result[5] > 1", json(json!([])), true),
        ("true ? true : result[5]", json(json!([])), true),
        ("(1 ?? result[5]) == 1", json(json!([])), true),
        ("all(result, # > 1)", json(json!([0, "not a number"])), false),
        ("any(result, # > 1)", json(json!([2, "not a number"])), true),
    ]);
}

#[test]
fn builtins() {
    check_table(&[
        ("len('héllo') == 5 && len(result) == 0", json(json!({})), true),
        ("len(result) == 2", json(json!({"a": 1, "b": 2})), true),
        ("filter(result, # > 1) == [2, 3]", json(json!([1, 2, 3])), true),
        ("map(result, # * 2) == [2, 4]", json(json!([1, 2])), true),
        ("map(result, {#.v}) == [1, 2]", json(json!([{"v": 1}, {"v": 2}])), true),
        ("count(result, # > 1) == 2", json(json!([1, 2, 3])), true),
        ("count(result) == 1", json(json!([true, false])), true),
        ("sum(result) == 6 && sum(result, # * 2) == 12", json(json!([1, 2, 3])), true),
        ("sum(result) == 0", json(json!([])), true),
        ("max(result) == 3 && min(result) == 1", json(json!([2, 3, 1])), true),
        ("max(1, 5, 2) == 5 && min(4, -1) == -1", Value::Nil, true),
        ("max(result) == nil", json(json!([])), true),
        ("isNaN(max(1, result, 2))", Value::Number(f64::NAN), true),
        ("abs(-2) == 2 && ceil(1.2) == 2 && floor(1.8) == 1", Value::Nil, true),
        ("round(2.5) == 3 && round(-2.5) == -3 && round(2.4) == 2", Value::Nil, true),
        ("first(result) == 1 && last(result) == 3", json(json!([1, 2, 3])), true),
        ("first(result) == nil && last(result) == nil", json(json!([])), true),
        ("string(result) == '[1,\"a\"]'", json(json!([1, "a"])), true),
        ("string(0.5) == '0.5' && string('x') == 'x'", Value::Nil, true),
        ("int('42') == 42 && int(4.7) == 4 && int(-4.7) == -4", Value::Nil, true),
        ("float('1e3') == 1000 && float(2) == 2", Value::Nil, true),
        ("asInt(4.7) == 4 && asFloat(0.5) == 0.5", Value::Nil, true),
        ("isNaN(asFloat('NaN'))", Value::Nil, true),
        ("lower('AbC') == 'abc' && upper('AbC') == 'ABC'", Value::Nil, true),
        ("trim('  a ') == 'a' && trim('xxaxx', 'x') == 'a'", Value::Nil, true),
        ("all(result, all(#.values, # > 0))", json(json!([{"values": [1, 2]}, {"values": [3]}])), true),
        ("any(result, any(#, # == 0))", json(json!([[1, 2], [3, 0]])), true),
        ("default(nil, 1) == 1 && default(2, 1) == 2", Value::Nil, true),
    ]);
}

#[test]
fn the_source_is_kept() {
    let condition = Condition::compile(" result > 1 ").unwrap();
    assert_eq!(condition.source(), " result > 1 ");
    assert_eq!(evaluate("result > 1", &json(json!(2))), Ok(true));
}

#[test]
fn values_print_like_json() {
    let cases = [
        (json(json!([0.98, 0.97])), "[0.98,0.97]"),
        (json(json!(0.98)), "0.98"),
        (json(json!(1.0)), "1"),
        (json(json!(-3)), "-3"),
        (json(json!("ok")), "ok"),
        (json(json!(["ok", "a\"b"])), "[\"ok\",\"a\\\"b\"]"),
        (json(json!({"b": [true, null], "a": 1})), "{\"a\":1,\"b\":[true,null]}"),
        (Value::Nil, "null"),
        (Value::Number(f64::NAN), "NaN"),
        (Value::List(vec![Value::Number(f64::INFINITY), Value::Number(f64::NEG_INFINITY)]), "[+Inf,-Inf]"),
        (Value::Number(1e21), "1e+21"),
        (Value::Number(1.5e-7), "1.5e-7"),
        (Value::Number(123456789012.0), "123456789012"),
        (Value::Number(0.000001), "0.000001"),
    ];
    for (value, printed) in cases {
        assert_eq!(value.to_string(), printed, "{value:?}");
    }
}

#[test]
fn empty_results() {
    assert!(Value::Nil.is_empty_result());
    assert!(json(json!([])).is_empty_result());
    assert!(!json(json!([0])).is_empty_result());
    assert!(!json(json!(0)).is_empty_result());
    assert!(!json(json!({})).is_empty_result());
}

#[test]
fn json_converts_to_values() {
    let expected = Value::Map(
        [(
            "a".to_owned(),
            Value::List(vec![Value::Number(1.0), Value::Nil, Value::String("x".to_owned()), Value::Bool(true)]),
        )]
        .into(),
    );
    assert_eq!(json(json!({"a": [1, null, "x", true]})), expected);
}
