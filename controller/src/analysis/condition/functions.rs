//! The functions a condition may call: Argo's (`asInt`, `default`, ...) and the expr builtins
//! users write (`len`, `all`, `max`, ...).

use std::borrow::Cow;
use std::cmp::Ordering;

use super::ast::Expr;
use super::eval::{Failure, Outcome, Scope, boolean, eval, expect_bool, invalid};
use super::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Function {
    AsInt,
    AsFloat,
    IsNaN,
    IsInf,
    IsNil,
    Default,
    Len,
    All,
    Any,
    NoneOf,
    One,
    Filter,
    Map,
    Count,
    Sum,
    Max,
    Min,
    Abs,
    Ceil,
    Floor,
    Round,
    First,
    Last,
    String,
    Int,
    Float,
    Lower,
    Upper,
    Trim,
}

/// A function's name and how many arguments it takes; the parser checks calls against it.
#[derive(Debug)]
pub(super) struct Signature {
    pub name: &'static str,
    pub function: Function,
    min: usize,
    /// `usize::MAX`: any number.
    max: usize,
}

const fn signature(name: &'static str, function: Function, min: usize, max: usize) -> Signature {
    Signature { name, function, min, max }
}

static SIGNATURES: [Signature; 29] = [
    signature("asInt", Function::AsInt, 1, 1),
    signature("asFloat", Function::AsFloat, 1, 1),
    signature("isNaN", Function::IsNaN, 1, 1),
    signature("isInf", Function::IsInf, 1, 1),
    signature("isNil", Function::IsNil, 1, 1),
    signature("default", Function::Default, 2, 2),
    signature("len", Function::Len, 1, 1),
    signature("all", Function::All, 2, 2),
    signature("any", Function::Any, 2, 2),
    signature("none", Function::NoneOf, 2, 2),
    signature("one", Function::One, 2, 2),
    signature("filter", Function::Filter, 2, 2),
    signature("map", Function::Map, 2, 2),
    signature("count", Function::Count, 1, 2),
    signature("sum", Function::Sum, 1, 2),
    signature("max", Function::Max, 1, usize::MAX),
    signature("min", Function::Min, 1, usize::MAX),
    signature("abs", Function::Abs, 1, 1),
    signature("ceil", Function::Ceil, 1, 1),
    signature("floor", Function::Floor, 1, 1),
    signature("round", Function::Round, 1, 1),
    signature("first", Function::First, 1, 1),
    signature("last", Function::Last, 1, 1),
    signature("string", Function::String, 1, 1),
    signature("int", Function::Int, 1, 1),
    signature("float", Function::Float, 1, 1),
    signature("lower", Function::Lower, 1, 1),
    signature("upper", Function::Upper, 1, 1),
    signature("trim", Function::Trim, 1, 2),
];

impl Signature {
    pub fn named(name: &str) -> Option<&'static Signature> {
        SIGNATURES.iter().find(|signature| signature.name == name)
    }

    /// The second argument of these is a predicate, evaluated once per element with `#` bound to it.
    pub fn takes_predicate(&self) -> bool {
        matches!(
            self.function,
            Function::All
                | Function::Any
                | Function::NoneOf
                | Function::One
                | Function::Filter
                | Function::Map
                | Function::Count
                | Function::Sum
        )
    }

    pub fn check_arity(&self, count: usize) -> Result<(), String> {
        if (self.min..=self.max).contains(&count) {
            return Ok(());
        }
        let expected = match (self.min, self.max) {
            (min, usize::MAX) => format!("at least {min}"),
            (min, max) if min == max => min.to_string(),
            (min, max) => format!("{min} to {max}"),
        };
        let noun = if expected.ends_with(" 1") || expected == "1" { "argument" } else { "arguments" };
        Err(format!("{} expects {expected} {noun}, got {count}", self.name))
    }
}

pub(super) fn call<'a>(signature: &'static Signature, arguments: &'a [Expr], scope: Scope<'a>) -> Outcome<'a> {
    match (signature.function, arguments) {
        (Function::Default, [value, fallback]) => match present(value, scope)? {
            Some(value) => Ok(value),
            None => eval(fallback, scope),
        },
        (Function::IsNil, [value]) => Ok(boolean(present(value, scope)?.is_none())),
        (_, [list, predicate @ ..]) if signature.takes_predicate() => {
            iterate(signature, list, predicate.first(), scope)
        }
        _ => {
            let values = arguments.iter().map(|argument| eval(argument, scope)).collect::<Result<Vec<_>, _>>()?;
            values.iter().try_for_each(|value| scope.budget.spend_on(value))?;
            apply(signature, &values).map(Cow::Owned)
        }
    }
}

/// `expr`'s value, or `None` when it is nil or names an index or key that is not there.
fn present<'a>(expr: &'a Expr, scope: Scope<'a>) -> Result<Option<Cow<'a, Value>>, Failure> {
    match eval(expr, scope) {
        Ok(value) if *value != Value::Nil => Ok(Some(value)),
        Ok(_) | Err(Failure::Missing(_)) => Ok(None),
        Err(failure) => Err(failure),
    }
}

fn iterate<'a>(signature: &Signature, list: &'a Expr, predicate: Option<&'a Expr>, scope: Scope<'a>) -> Outcome<'a> {
    let name = signature.name;
    let list = eval(list, scope)?;
    let Value::List(items) = list.as_ref() else { return Err(unexpected(name, &list)) };
    scope.budget.spend(items.len())?;
    // The predicate's value for an element; without a predicate, the element itself.
    let apply = |item| match predicate {
        Some(predicate) => eval(predicate, scope.with_element(item)),
        None => Ok(Cow::Borrowed(item)),
    };
    let test = |item| expect_bool(&*apply(item)?, "from the predicate", name);
    let value = match signature.function {
        Function::All => Value::Bool(tally(items, test, false, 1)? == 0),
        Function::Any => Value::Bool(tally(items, test, true, 1)? > 0),
        Function::NoneOf => Value::Bool(tally(items, test, true, 1)? == 0),
        Function::One => Value::Bool(tally(items, test, true, 2)? == 1),
        Function::Count => Value::Number(tally(items, test, true, usize::MAX)? as f64),
        Function::Filter => {
            let mut kept = Vec::new();
            for item in items {
                if test(item)? {
                    kept.push(scope.budget.own(Cow::Borrowed(item))?);
                }
            }
            Value::List(kept)
        }
        Function::Map => {
            Value::List(items.iter().map(|item| scope.budget.own(apply(item)?)).collect::<Result<_, _>>()?)
        }
        Function::Sum => Value::Number(
            items.iter().try_fold(0.0, |total, item| Ok::<_, Failure>(total + number(name, &*apply(item)?)?))?,
        ),
        _ => return Err(invalid(format!("{name} takes no predicate"))),
    };
    Ok(Cow::Owned(value))
}

/// How many elements `test` answers `wanted` for, counting no further than `limit`: the
/// quantifiers stop at the first element that decides them, as expr's do.
fn tally<'v>(
    items: &'v [Value],
    test: impl Fn(&'v Value) -> Result<bool, Failure>,
    wanted: bool,
    limit: usize,
) -> Result<usize, Failure> {
    let mut count = 0;
    for item in items {
        if count == limit {
            break;
        }
        if test(item)? == wanted {
            count += 1;
        }
    }
    Ok(count)
}

/// The functions that take plain values.
fn apply(signature: &Signature, values: &[Cow<'_, Value>]) -> Result<Value, Failure> {
    let name = signature.name;
    let values: Vec<&Value> = values.iter().map(AsRef::as_ref).collect();
    Ok(match (signature.function, values.as_slice()) {
        (Function::AsInt | Function::Int, [value]) => Value::Number(integer(name, value)?),
        (Function::AsFloat | Function::Float, [value]) => Value::Number(float(name, value)?),
        (Function::IsNaN, [value]) => Value::Bool(number(name, value)?.is_nan()),
        (Function::IsInf, [value]) => Value::Bool(number(name, value)?.is_infinite()),
        (Function::Abs, [value]) => Value::Number(number(name, value)?.abs()),
        (Function::Ceil, [value]) => Value::Number(number(name, value)?.ceil()),
        (Function::Floor, [value]) => Value::Number(number(name, value)?.floor()),
        // Half away from zero, like Go's math.Round.
        (Function::Round, [value]) => Value::Number(number(name, value)?.round()),
        (Function::Len, [value]) => Value::Number(length(name, value)? as f64),
        // An empty list has no first element: nil, as in expr.
        (Function::First, [value]) => list(name, value)?.first().cloned().unwrap_or(Value::Nil),
        (Function::Last, [value]) => list(name, value)?.last().cloned().unwrap_or(Value::Nil),
        (Function::String, [value]) => Value::String(value.to_string()),
        (Function::Lower, [value]) => Value::String(text(name, value)?.to_lowercase()),
        (Function::Upper, [value]) => Value::String(text(name, value)?.to_uppercase()),
        (Function::Trim, [value]) => Value::String(text(name, value)?.trim().to_owned()),
        (Function::Trim, [value, cutset]) => {
            let cutset = text(name, cutset)?;
            Value::String(text(name, value)?.trim_matches(|c| cutset.contains(c)).to_owned())
        }
        (Function::Max, values) => extremum(name, values, Ordering::Greater)?,
        (Function::Min, values) => extremum(name, values, Ordering::Less)?,
        _ => return Err(invalid(format!("{name} cannot be called with {} arguments", values.len()))),
    })
}

fn unexpected(name: &str, value: &Value) -> Failure {
    invalid(format!("invalid argument for {name} (type {})", value.type_name()))
}

fn number(name: &str, value: &Value) -> Result<f64, Failure> {
    match value {
        Value::Number(number) => Ok(*number),
        other => Err(unexpected(name, other)),
    }
}

fn text<'v>(name: &str, value: &'v Value) -> Result<&'v str, Failure> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(unexpected(name, other)),
    }
}

fn list<'v>(name: &str, value: &'v Value) -> Result<&'v [Value], Failure> {
    match value {
        Value::List(items) => Ok(items),
        other => Err(unexpected(name, other)),
    }
}

fn length(name: &str, value: &Value) -> Result<usize, Failure> {
    match value {
        Value::List(items) => Ok(items.len()),
        Value::Map(fields) => Ok(fields.len()),
        Value::String(text) => Ok(text.chars().count()),
        other => Err(unexpected(name, other)),
    }
}

/// `asInt` and `int`: a number truncated, or a string holding a whole number.
fn integer(name: &str, value: &Value) -> Result<f64, Failure> {
    match value {
        Value::Number(number) => Ok(number.trunc()),
        Value::String(text) => text
            .parse::<i64>()
            .map(|number| number as f64)
            .map_err(|_| invalid(format!("{name}: cannot parse {text:?} as an integer"))),
        other => Err(unexpected(name, other)),
    }
}

/// `asFloat` and `float`: a number, or a string holding one.
fn float(name: &str, value: &Value) -> Result<f64, Failure> {
    match value {
        Value::Number(number) => Ok(*number),
        Value::String(text) => text.parse().map_err(|_| invalid(format!("{name}: cannot parse {text:?} as a number"))),
        other => Err(unexpected(name, other)),
    }
}

/// The largest (or smallest) of the arguments, or of the elements of a single list argument;
/// nil for an empty list. A NaN makes the answer NaN, so that a NaN measurement is not hidden.
fn extremum(name: &str, values: &[&Value], wanted: Ordering) -> Result<Value, Failure> {
    let candidates: Vec<&Value> = match values {
        [Value::List(items)] => items.iter().collect(),
        _ => values.to_vec(),
    };
    let mut best: Option<f64> = None;
    for candidate in candidates {
        let candidate = number(name, candidate)?;
        best = Some(match best {
            None => candidate,
            Some(current) if current.is_nan() || candidate.is_nan() => f64::NAN,
            Some(current) if candidate.partial_cmp(&current) == Some(wanted) => candidate,
            Some(current) => current,
        });
    }
    Ok(best.map_or(Value::Nil, Value::Number))
}
