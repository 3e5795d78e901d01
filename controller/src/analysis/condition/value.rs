//! The values conditions compute with: what a metric provider returns, shaped like JSON.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// A value a metric provider returns, as the conditions see it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Every number is a float64, as in JSON and in what Prometheus returns.
    Number(f64),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Nil or an empty list: the provider found no data.
    pub fn is_empty_result(&self) -> bool {
        match self {
            Value::Nil => true,
            Value::List(items) => items.is_empty(),
            _ => false,
        }
    }

    /// The type's name in error messages; numbers are `float64` as in upstream's messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Number(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(flag) => Value::Bool(flag),
            // Every JSON number has an f64 reading; NaN only guards the impossible case.
            serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(text) => Value::String(text),
            serde_json::Value::Array(items) => Value::List(items.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(fields) => {
                Value::Map(fields.into_iter().map(|(key, value)| (key, Value::from(value))).collect())
            }
        }
    }
}

/// Compact JSON, except that a top-level string is printed bare (it is the measurement itself)
/// and that NaN and the infinities, which JSON lacks, print as Prometheus prints them.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(text) => f.write_str(text),
            other => write_json(f, other),
        }
    }
}

fn write_json(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Nil => f.write_str("null"),
        Value::Bool(flag) => write!(f, "{flag}"),
        Value::Number(number) => write_number(f, *number),
        Value::String(text) => write_quoted(f, text),
        Value::List(items) => {
            f.write_char('[')?;
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    f.write_char(',')?;
                }
                write_json(f, item)?;
            }
            f.write_char(']')
        }
        Value::Map(fields) => {
            f.write_char('{')?;
            for (position, (key, item)) in fields.iter().enumerate() {
                if position > 0 {
                    f.write_char(',')?;
                }
                write_quoted(f, key)?;
                f.write_char(':')?;
                write_json(f, item)?;
            }
            f.write_char('}')
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str(&serde_json::to_string(text).map_err(|_| fmt::Error)?)
}

/// Whole numbers without a fraction, and the exponent form where Go's JSON encoder (which
/// upstream's measurements went through) switches to it: below 1e-6 and from 1e21.
fn write_number(f: &mut fmt::Formatter<'_>, number: f64) -> fmt::Result {
    if number.is_nan() {
        f.write_str("NaN")
    } else if number.is_infinite() {
        f.write_str(if number > 0.0 { "+Inf" } else { "-Inf" })
    } else if number != 0.0 && !(1e-6..1e21).contains(&number.abs()) {
        let text = format!("{number:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => write!(f, "{mantissa}e+{exponent}"),
            _ => f.write_str(&text),
        }
    } else {
        write!(f, "{number}")
    }
}
