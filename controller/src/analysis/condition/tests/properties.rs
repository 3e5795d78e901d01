//! Properties for any input: compiling and evaluating never panic, and evaluation is a function
//! of the condition and the measurement.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use crate::analysis::condition::{Condition, Value};

/// Pieces of the language, and a few that are not, to build sources from.
const TOKENS: [&str; 62] = [
    "result",
    "#",
    ".",
    "?.",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "?",
    "??",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "^",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "&&",
    "||",
    "and",
    "or",
    "not",
    "in",
    "contains",
    "startsWith",
    "matches",
    "true",
    "nil",
    "0",
    "-1",
    "1.5e3",
    ".5",
    "0x1F",
    "1_0",
    "'a'",
    "\"b\\n\"",
    "`c`",
    "\"",
    "'",
    "\\",
    "len",
    "all",
    "any",
    "map",
    "default",
    "isNil",
    "asInt",
    "max",
    "a",
    "é",
    "..",
];

fn source() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(TOKENS.as_slice()).prop_map(str::to_owned),
        1 => any::<String>(),
        1 => vec(any::<u8>(), 0..8).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ];
    let pieces =
        (vec(piece, 0..40), any::<bool>()).prop_map(|(pieces, spaced)| pieces.join(if spaced { " " } else { "" }));
    prop_oneof![pieces, mutated()]
}

/// A valid expression with one character cut out and another put in, to reach the parser's
/// error paths deep inside an expression.
fn mutated() -> impl Strategy<Value = String> {
    (condition(), any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<char>()).prop_map(
        |(source, cut, insert, inserted)| {
            let mut chars: Vec<char> = source.chars().collect();
            chars.remove(cut.index(chars.len()));
            chars.insert(insert.index(chars.len() + 1), inserted);
            chars.into_iter().collect()
        },
    )
}

/// Mostly bool-valued conditions, so that evaluations get past the final type check.
fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        expression(),
        (expression(), expression()).prop_map(|(left, right)| format!("{left} == {right}")),
        expression().prop_map(|value| format!("isNil({value})")),
        (expression(), expression()).prop_map(|(value, bound)| format!("default({value}, 0) < {bound}")),
    ]
}

/// Expressions that mostly compile, so that evaluation gets exercised.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "result", "result", "result", "#", "nil", "true", "false", "0", "1", "-1", "0.5", "1e308", "-1e308", "'a'",
        "''", "[]", "[1, 'a']",
    ])
    .prop_map(str::to_owned);
    leaf.prop_recursive(4, 48, 4, |inner| {
        let binary = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "**", "==", "!=", "<", ">=", "&&", "||", "??", "in", "not in", "contains",
        ]);
        let unary = prop::sample::select(vec!["-", "+", "!", "not "]);
        let call = prop::sample::select(vec![
            "len", "abs", "isNaN", "isInf", "isNil", "asInt", "asFloat", "first", "last", "string", "int", "float",
            "lower", "trim", "max", "min", "sum", "ceil", "round",
        ]);
        let predicate = prop::sample::select(vec!["all", "any", "none", "one", "filter", "map", "count", "sum"]);
        let field = prop::sample::select(vec!["a", "b", "c", "data"]);
        prop_oneof![
            (inner.clone(), binary, inner.clone()).prop_map(|(left, op, right)| format!("({left} {op} {right})")),
            (unary, inner.clone()).prop_map(|(op, operand)| format!("{op}{operand}")),
            (inner.clone(), inner.clone()).prop_map(|(base, key)| format!("{base}[{key}]")),
            (inner.clone(), field.clone()).prop_map(|(base, name)| format!("{base}.{name}")),
            (inner.clone(), field).prop_map(|(base, name)| format!("{base}?.{name}")),
            (call, inner.clone()).prop_map(|(name, argument)| format!("{name}({argument})")),
            (predicate, inner.clone(), inner.clone())
                .prop_map(|(name, list, body)| format!("{name}({list}, {{{body}}})")),
            (inner.clone(), inner.clone()).prop_map(|(value, fallback)| format!("default({value}, {fallback})")),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            vec(inner, 0..3).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

fn value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(0.0),
        -3.0..3.0,
    ];
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
        "[a-c]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::List),
            btree_map(prop::sample::select(vec!["a", "b", "c", "data"]).prop_map(str::to_owned), inner, 0..4)
                .prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn compiling_anything_never_panics(source in source()) {
        if let Ok(condition) = Condition::compile(&source) {
            prop_assert_eq!(condition.source(), source.as_str());
        }
    }

    #[test]
    fn evaluating_never_panics_and_is_repeatable(source in condition(), results in vec(value(), 1..6)) {
        if let Ok(condition) = Condition::compile(&source) {
            for result in &results {
                let first = condition.evaluate(result);
                prop_assert_eq!(first, condition.evaluate(result));
            }
        }
    }

    #[test]
    fn finite_numbers_print_exactly(number in any::<f64>()) {
        let printed = Value::Number(number).to_string();
        prop_assert_eq!(printed.parse::<f64>().ok(), Some(number));
    }
}
