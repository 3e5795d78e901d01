//! Tests of the condition language: Argo's idioms, expr's semantics, the errors, and properties
//! that must hold for any input.

mod errors;
mod idioms;
mod properties;
mod semantics;

use super::{Condition, Value};

/// `source` evaluated against `result`; a compile error fails the test.
fn evaluate(source: &str, result: &Value) -> Result<bool, String> {
    let condition = Condition::compile(source).unwrap_or_else(|error| panic!("{source}: {error}"));
    condition.evaluate(result).map_err(|error| error.0)
}

fn json(value: serde_json::Value) -> Value {
    Value::from(value)
}

/// Checks every `(condition, result, expected)` row and names all the rows that fail.
fn check_table(rows: &[(&str, Value, bool)]) {
    check_outcomes(rows.iter().map(|(source, result, expected)| (*source, result, Ok(*expected))));
}

/// Checks every `(condition, result, expected outcome)` and names all that differ.
fn check_outcomes<'a>(rows: impl Iterator<Item = (&'a str, &'a Value, Result<bool, String>)>) {
    let failures: Vec<String> = rows
        .filter_map(|(source, result, expected)| {
            let outcome = evaluate(source, result);
            (outcome != expected).then(|| format!("{source} on {result}: expected {expected:?}, got {outcome:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{} failing rows:\n{}", failures.len(), failures.join("\n"));
}
