//! Conditions that do not compile, and evaluations that fail, with the exact messages.

use serde_json::json;

use super::{check_outcomes, evaluate, json};
use crate::analysis::condition::{CompileError, Condition, MAX_SOURCE_CHARS, Value};

fn compile_error(source: &str) -> String {
    match Condition::compile(source) {
        Ok(condition) => panic!("{source} compiled: {condition:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn compile_errors_name_the_column() {
    let cases = [
        ("result[0] >= 0.95 )", "column 19: unexpected token \")\""),
        ("result == \"ok", "column 11: unterminated string"),
        ("result == 'ok\\'", "column 11: unterminated string"),
        ("result == `ok", "column 11: unterminated string"),
        ("result == \"o\\qk\"", "column 13: invalid escape sequence"),
        ("result == \"\\u12\"", "column 12: invalid escape sequence"),
        ("reslt > 1", "column 1: unknown name \"reslt\""),
        ("result > 1 && foo", "column 15: unknown name \"foo\""),
        ("foo(result) > 1", "column 1: unknown function \"foo\""),
        ("1 < mean(result)", "column 5: unknown function \"mean\""),
        ("len(result, 1) > 0", "column 1: len expects 1 argument, got 2"),
        ("default(result) > 0", "column 1: default expects 2 arguments, got 1"),
        ("all(result)", "column 1: all expects 2 arguments, got 1"),
        ("max() > 1", "column 1: max expects at least 1 argument, got 0"),
        ("trim('a', 'b', 'c') == 'a'", "column 1: trim expects 1 to 2 arguments, got 3"),
        ("", "column 1: unexpected end of expression"),
        ("result >", "column 9: unexpected end of expression"),
        ("result > > 1", "column 10: unexpected token \">\""),
        ("(result > 1", "column 12: expected \")\" but found end of expression"),
        ("len(result 1)", "column 12: expected \")\" but found \"1\""),
        ("all(result, {# > 1) ", "column 19: expected \"}\" but found \")\""),
        ("result[0", "column 9: expected \"]\" but found end of expression"),
        ("true ? 1", "column 9: expected \":\" but found end of expression"),
        ("result.", "column 8: expected a name after \".\" but found end of expression"),
        ("result.5", "column 7: unexpected token \".5\""),
        ("# > 1", "column 1: # is only valid inside a predicate"),
        ("all(#, true)", "column 5: # is only valid inside a predicate"),
        (".a > 1", "column 1: unexpected token \".\""),
        ("result matches '^a'", "column 8: matches is not supported"),
        ("result not matches '^a'", "column 12: matches is not supported"),
        ("result not 5", "column 12: unexpected token \"5\""),
        ("result ?? 1 > 0", "column 13: \">\" and \"??\" cannot be mixed without parentheses"),
        ("result @ 1", "column 8: unexpected character '@'"),
        ("result = 1", "column 8: unexpected character '='"),
        ("1abc > 0", "column 1: invalid number literal"),
        ("0b102 > 0", "column 1: invalid number literal"),
        ("0x > 0", "column 1: invalid number literal"),
        ("1e > 0", "column 1: invalid number literal"),
        ("result == {}", "column 11: unexpected token \"{\""),
        ("result | len", "column 8: unexpected token \"|\""),
        ("result[1:2]", "column 9: expected \"]\" but found \":\""),
        ("1..3", "column 2: unexpected token \"..\""),
        ("and", "column 1: unexpected token \"and\""),
        ("é > 1", "column 1: unknown name \"é\""),
        ("'é' == é2", "column 8: unknown name \"é2\""),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(source, expected)| {
            let actual = compile_error(source);
            (actual != *expected).then(|| format!("{source}: expected {expected:?}, got {actual:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compile_errors_carry_column_and_reason() {
    assert_eq!(
        Condition::compile("reslt").unwrap_err(),
        CompileError { column: 1, reason: "unknown name \"reslt\"".to_owned() }
    );
}

#[test]
fn nesting_and_length_are_bounded() {
    let too_deep = [
        format!("{}1{}", "(".repeat(150), ")".repeat(150)),
        format!("{}1", "-".repeat(150)),
        format!("{}true", "!".repeat(150)),
        format!("1{} > 0", " + 1".repeat(150)),
        format!("2{}", " ** 2".repeat(150)),
        format!("{}1{}", "[".repeat(150), "]".repeat(150)),
        format!("{}1{}", "len(".repeat(150), ")".repeat(150)),
        format!("{}true{}", "true ? ".repeat(150), " : false".repeat(150)),
    ];
    for source in too_deep {
        assert!(compile_error(&source).ends_with(": expression nested too deeply"), "{source}");
    }
    // A long chain of accesses or comparisons stays one node deep.
    let long_chain = format!("result{} == nil", "?.a".repeat(500));
    assert_eq!(evaluate(&long_chain, &Value::Nil), Ok(true));
    let long_comparison = format!("0{} < 1", " < 1 == 1".repeat(100));
    assert!(Condition::compile(&long_comparison).is_ok());

    let long = format!("result{}> 1", " ".repeat(MAX_SOURCE_CHARS));
    assert_eq!(compile_error(&long), format!("column 4097: expression longer than {MAX_SOURCE_CHARS} characters"));
    let longest = format!("{}result", " ".repeat(MAX_SOURCE_CHARS - 6));
    assert!(Condition::compile(&longest).is_ok());
}

#[test]
fn the_deepest_conditions_evaluate_within_a_thread_stack() {
    let nested =
        |depth: usize| format!("{}true{}", "all(#, ".repeat(depth), ")".repeat(depth)).replacen('#', "result", 1);
    let depth = 99;
    assert!(Condition::compile(&nested(depth + 1)).is_err());
    let source = nested(depth);
    let mut result = Value::Bool(true);
    for _ in 0..depth {
        result = Value::List(vec![result]);
    }
    let condition = Condition::compile(&source).unwrap();
    // Tokio's and the test harness's threads have 2 MiB; debug builds need about half of it.
    let evaluation = std::thread::Builder::new().stack_size(2 << 20).spawn(move || condition.evaluate(&result));
    assert_eq!(evaluation.unwrap().join().unwrap(), Ok(true));
}

#[test]
fn evaluation_cost_is_bounded() {
    let nested = format!("{}true{}", "all(result, any(#, ".repeat(20), "))".repeat(20));
    let pairs = json(json!([[1, 2], [3, 4]]));
    let outcome = Condition::compile(&nested).unwrap().evaluate_within(&pairs, 10_000);
    let expected = "evaluation too costly: more than 10000 steps (nested predicates over a large result?)";
    assert_eq!(outcome.unwrap_err().0, expected);
    // Copies are paid for by their size.
    let copies = Condition::compile("len(map(result, result)) > 0").unwrap();
    let samples = Value::List((0..200).map(|sample| Value::Number(f64::from(sample))).collect());
    assert!(copies.evaluate_within(&samples, 10_000).is_err());
    // Idioms over a large vector stay well within the default budget.
    let samples = Value::List((0..100_000).map(|sample| Value::Number(f64::from(sample))).collect());
    assert_eq!(evaluate("all(result, # >= 0) && len(filter(result, # > 10)) > 0", &samples), Ok(true));
}

#[test]
fn evaluation_errors() {
    let cases = [
        ("result[0] > 1", json(json!([])), "index out of range: 0 (length 0)"),
        ("result[-3] > 1", json(json!([1, 2])), "index out of range: -3 (length 2)"),
        ("result[1e300] > 1", json(json!([1])), "index out of range: 1e+300 (length 1)"),
        ("result[0 / 0] > 1", json(json!([1])), "invalid index NaN"),
        ("result > 'a'", json(json!(1)), "invalid operation: float64 > string"),
        ("result < 1", Value::Nil, "invalid operation: nil < float64"),
        ("result", json(json!(1)), "expected bool, but got float64"),
        ("result", Value::Nil, "expected bool, but got nil"),
        ("result[0]", json(json!([[1]])), "expected bool, but got list"),
        ("result", json(json!({})), "expected bool, but got map"),
        ("result", json(json!("true")), "expected bool, but got string"),
        ("result.a.b", json(json!({})), "cannot fetch b from nil"),
        ("result.a > 1", json(json!(1)), "cannot fetch a from float64"),
        ("result.a > 1", json(json!([1])), "cannot fetch a from list"),
        ("result[0] > 1", json(json!({"0": 1})), "cannot fetch 0 from map"),
        ("result + 1 > 0", json(json!("a")), "invalid operation: string + float64"),
        ("-result > 0", json(json!("a")), "invalid operation: -string"),
        ("!result", json(json!(1)), "invalid operation: !float64"),
        ("result && true", json(json!(1)), "expected bool as an operand of &&, but got float64"),
        ("false || result", json(json!(1)), "expected bool as an operand of ||, but got float64"),
        ("result ? true : false", json(json!(1)), "expected bool as the condition of ?:, but got float64"),
        ("all(result, # > 1)", json(json!(5)), "invalid argument for all (type float64)"),
        ("all(result, #)", json(json!([1])), "expected bool from the predicate of all, but got float64"),
        ("asInt(result) > 1", json(json!("abc")), "asInt: cannot parse \"abc\" as an integer"),
        ("asInt(result) > 1", json(json!("1.5")), "asInt: cannot parse \"1.5\" as an integer"),
        ("asFloat(result) > 1", json(json!("x")), "asFloat: cannot parse \"x\" as a number"),
        ("asFloat(result) > 1", json(json!(true)), "invalid argument for asFloat (type bool)"),
        ("isNaN(result)", json(json!("x")), "invalid argument for isNaN (type string)"),
        ("len(result) > 0", Value::Nil, "invalid argument for len (type nil)"),
        ("sum(result) > 0", json(json!([1, "a"])), "invalid argument for sum (type string)"),
        ("max(result, 'a') > 0", json(json!(1)), "invalid argument for max (type string)"),
        ("result in 'abc'", json(json!("a")), "invalid operation: string in string"),
        ("1 in result", json(json!({"1": 1})), "invalid operation: float64 in map"),
        ("result contains 1", json(json!("a")), "invalid operation: string contains float64"),
        // Only a missing index or key counts as nil for default; a type error still fails.
        ("default(result.a.b, 1) == 1", json(json!(5)), "cannot fetch a from float64"),
        ("isNil(result.a)", json(json!(5)), "cannot fetch a from float64"),
    ];
    check_outcomes(cases.iter().map(|(source, result, expected)| (*source, result, Err(expected.to_string()))));
}
