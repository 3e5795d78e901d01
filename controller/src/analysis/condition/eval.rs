//! Evaluates a compiled condition. Values are borrowed from the measurement and the tree where
//! possible, so that `result[0]` or `all(result, ...)` copies nothing.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::ast::{
    ArithmeticOperator, ComparisonOperator, Expr, Kind, Link, LogicalOperator, Operator, Step, UnaryOperator,
};
use super::budget::Budget;
use super::functions;
use super::value::Value;

/// What a missing map key reads as, borrowed like any other value.
static NIL: Value = Value::Nil;

/// Why evaluation failed. A missing index or key is told apart because `default` and `isNil`
/// treat it as nil.
#[derive(Debug)]
pub(super) enum Failure {
    Missing(String),
    Invalid(String),
}

impl Failure {
    pub fn message(self) -> String {
        match self {
            Failure::Missing(message) | Failure::Invalid(message) => message,
        }
    }
}

pub(super) fn invalid(message: impl Into<String>) -> Failure {
    Failure::Invalid(message.into())
}

pub(super) type Outcome<'a> = Result<Cow<'a, Value>, Failure>;

/// What the names of a condition stand for.
#[derive(Clone, Copy)]
pub(super) struct Scope<'a> {
    pub result: &'a Value,
    /// `#`, inside a predicate.
    pub element: Option<&'a Value>,
    pub budget: &'a Budget,
}

impl<'a> Scope<'a> {
    /// The scope of a predicate looking at `element`.
    pub fn with_element(self, element: &'a Value) -> Scope<'a> {
        Scope { element: Some(element), ..self }
    }
}

pub(super) fn boolean(flag: bool) -> Cow<'static, Value> {
    Cow::Owned(Value::Bool(flag))
}

/// `value` as a bool; `role` and `of` say where a bool was expected ("as an operand" of "&&").
pub(super) fn expect_bool(value: &Value, role: &str, of: &str) -> Result<bool, Failure> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        other => Err(invalid(format!("expected bool {role} of {of}, but got {}", other.type_name()))),
    }
}

pub(super) fn eval<'a>(expr: &'a Expr, scope: Scope<'a>) -> Outcome<'a> {
    scope.budget.spend(1)?;
    match &expr.kind {
        Kind::Literal(value) => Ok(Cow::Borrowed(value)),
        Kind::List(items) => {
            let items = items.iter().map(|item| scope.budget.own(eval(item, scope)?)).collect::<Result<_, _>>()?;
            Ok(Cow::Owned(Value::List(items)))
        }
        Kind::Result => Ok(Cow::Borrowed(scope.result)),
        Kind::Element => scope.element.map(Cow::Borrowed).ok_or_else(|| invalid("# is only valid inside a predicate")),
        Kind::Access { base, steps } => access(base, steps, scope),
        Kind::Unary(operator, operand) => unary(*operator, &*eval(operand, scope)?).map(Cow::Owned),
        Kind::Arithmetic(operator, left, right) => {
            arithmetic(*operator, &*eval(left, scope)?, &*eval(right, scope)?).map(Cow::Owned)
        }
        Kind::Logical(operator, left, right) => logical(*operator, left, right, scope),
        Kind::Coalesce(left, right) => match eval(left, scope)? {
            value if *value == Value::Nil => eval(right, scope),
            value => Ok(value),
        },
        Kind::Comparison { first, links } => comparisons(first, links, scope),
        Kind::Conditional { condition, then, otherwise } => {
            if expect_bool(&*eval(condition, scope)?, "as the condition", "?:")? {
                eval(then, scope)
            } else {
                eval(otherwise, scope)
            }
        }
        Kind::Call(signature, arguments) => functions::call(signature, arguments, scope),
    }
}

fn access<'a>(base: &'a Expr, steps: &'a [Step], scope: Scope<'a>) -> Outcome<'a> {
    let mut current = eval(base, scope)?;
    for step in steps {
        if step.optional && *current == Value::Nil {
            return Ok(Cow::Borrowed(&NIL));
        }
        let key = eval(&step.key, scope)?;
        current = match current {
            Cow::Borrowed(object) => lookup(object, &key)?,
            Cow::Owned(object) => Cow::Owned(scope.budget.own(lookup(&object, &key)?)?),
        };
    }
    Ok(current)
}

/// `object[key]`. A missing map key is nil, as in expr; an index past either end is an error.
fn lookup<'v>(object: &'v Value, key: &Value) -> Outcome<'v> {
    match (object, key) {
        (Value::Map(fields), Value::String(name)) => Ok(Cow::Borrowed(fields.get(name).unwrap_or(&NIL))),
        (Value::List(items), Value::Number(index)) => element(items, *index).map(Cow::Borrowed),
        (Value::String(text), Value::Number(index)) => {
            let chars: Vec<char> = text.chars().collect();
            Ok(Cow::Owned(Value::String(element(&chars, *index)?.to_string())))
        }
        (Value::Nil, _) => Err(Failure::Missing(format!("cannot fetch {key} from nil"))),
        (object, key) => Err(invalid(format!("cannot fetch {key} from {}", object.type_name()))),
    }
}

/// `items[index]`, where a negative index counts from the end and a fraction is dropped, as in expr.
fn element<T>(items: &[T], index: f64) -> Result<&T, Failure> {
    if !index.is_finite() {
        return Err(invalid(format!("invalid index {}", Value::Number(index))));
    }
    let position = if index < 0.0 { items.len() as f64 + index.trunc() } else { index.trunc() };
    // A float converts to usize saturating, so a huge position is simply not found.
    let found = if position >= 0.0 { items.get(position as usize) } else { None };
    found.ok_or_else(|| {
        Failure::Missing(format!("index out of range: {} (length {})", Value::Number(index), items.len()))
    })
}

fn invalid_operation(left: &Value, symbol: &str, right: &Value) -> Failure {
    invalid(format!("invalid operation: {} {symbol} {}", left.type_name(), right.type_name()))
}

fn unary(operator: UnaryOperator, operand: &Value) -> Result<Value, Failure> {
    match (operator, operand) {
        (UnaryOperator::Not, Value::Bool(flag)) => Ok(Value::Bool(!flag)),
        (UnaryOperator::Negate, Value::Number(number)) => Ok(Value::Number(-number)),
        (UnaryOperator::Plus, Value::Number(number)) => Ok(Value::Number(*number)),
        _ => Err(invalid(format!("invalid operation: {}{}", operator.symbol(), operand.type_name()))),
    }
}

/// Float arithmetic throughout, so division by zero gives an infinity or NaN rather than an error.
fn arithmetic(operator: ArithmeticOperator, left: &Value, right: &Value) -> Result<Value, Failure> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => Ok(Value::Number(match operator {
            ArithmeticOperator::Add => a + b,
            ArithmeticOperator::Subtract => a - b,
            ArithmeticOperator::Multiply => a * b,
            ArithmeticOperator::Divide => a / b,
            ArithmeticOperator::Remainder => a % b,
            ArithmeticOperator::Power => a.powf(*b),
        })),
        (Value::String(a), Value::String(b)) if operator == ArithmeticOperator::Add => {
            Ok(Value::String(format!("{a}{b}")))
        }
        _ => Err(invalid_operation(left, operator.symbol(), right)),
    }
}

/// `&&` and `||` evaluate their right side only when it decides the outcome.
fn logical<'a>(operator: LogicalOperator, left: &'a Expr, right: &'a Expr, scope: Scope<'a>) -> Outcome<'a> {
    let operand = |value: &Value| expect_bool(value, "as an operand", operator.symbol());
    let decisive = operator == LogicalOperator::Or;
    if operand(&*eval(left, scope)?)? == decisive {
        return Ok(boolean(decisive));
    }
    Ok(boolean(operand(&*eval(right, scope)?)?))
}

/// A chain of comparisons holds when each link does; it stops at the first that does not.
fn comparisons<'a>(first: &'a Expr, links: &'a [Link], scope: Scope<'a>) -> Outcome<'a> {
    let mut left = eval(first, scope)?;
    scope.budget.spend_on(&left)?;
    for link in links {
        let right = eval(&link.operand, scope)?;
        scope.budget.spend_on(&right)?;
        if compare(link.operator, &left, &right)? == link.negated {
            return Ok(boolean(false));
        }
        left = right;
    }
    Ok(boolean(true))
}

fn compare(operator: ComparisonOperator, left: &Value, right: &Value) -> Result<bool, Failure> {
    let failure = || invalid_operation(left, operator.symbol(), right);
    let ordering = || match (left, right) {
        (Value::Number(a), Value::Number(b)) => Ok(a.partial_cmp(b)),
        (Value::String(a), Value::String(b)) => Ok(Some(a.cmp(b))),
        _ => Err(failure()),
    };
    let text = || match (left, right) {
        (Value::String(a), Value::String(b)) => Ok((a, b)),
        _ => Err(failure()),
    };
    match operator {
        // Across types nothing is equal; numbers compare by value, so NaN equals nothing.
        ComparisonOperator::Equal => Ok(left == right),
        ComparisonOperator::NotEqual => Ok(left != right),
        ComparisonOperator::Less => Ok(ordering()? == Some(Ordering::Less)),
        ComparisonOperator::LessOrEqual => Ok(matches!(ordering()?, Some(Ordering::Less | Ordering::Equal))),
        ComparisonOperator::Greater => Ok(ordering()? == Some(Ordering::Greater)),
        ComparisonOperator::GreaterOrEqual => Ok(matches!(ordering()?, Some(Ordering::Greater | Ordering::Equal))),
        ComparisonOperator::In => match (left, right) {
            (_, Value::List(items)) => Ok(items.contains(left)),
            (Value::String(key), Value::Map(fields)) => Ok(fields.contains_key(key)),
            (_, Value::Nil) => Ok(false),
            _ => Err(failure()),
        },
        ComparisonOperator::Contains => text().map(|(a, b)| a.contains(b.as_str())),
        ComparisonOperator::StartsWith => text().map(|(a, b)| a.starts_with(b.as_str())),
        ComparisonOperator::EndsWith => text().map(|(a, b)| a.ends_with(b.as_str())),
    }
}
