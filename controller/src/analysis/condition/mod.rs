//! The condition language of analysis metrics: `successCondition` and `failureCondition`.
//!
//! Upstream evaluates them with the Go library expr-lang/expr; this is the part of expr that
//! Argo users write, with expr's precedences and semantics. A condition is compiled once and
//! evaluated against each measurement, which it sees as the variable `result` (a [`Value`]).
//!
//! - Literals: numbers (`1`, `0.5`, `.5`, `1e3`, `1_000`, `0x1F`), strings in `"`, `'` or
//!   backticks (raw), `true`, `false`, `nil`, lists `[1, 2]`.
//! - Access: `result[0]`, `result[-1]` (from the end), `result.a.b`, `result["a"]`, and
//!   `result?.a`, which is nil when `result` is. A missing map key reads as nil.
//! - Operators, loosest first: `?:`; `||` `or`; `&&` `and`; `==` `!=` `<` `<=` `>` `>=` `in`
//!   `contains` `startsWith` `endsWith` (and `not in` ...), which chain (`0 < x < 1`);
//!   `+` `-`; `*` `/` `%`; `**` `^` (right-associative); `??`. Prefix `!` and `not` take an
//!   operand up to the next `+`, `-`, comparison or logical operator (`not a == b` is
//!   `(not a) == b`), prefix `-` and `+` one up to anything but `**` and `??` (`-2 ** 2` is -4).
//!   `&&`, `||`, `?:` and `??` evaluate their right side only when needed.
//! - Argo's functions `asInt`, `asFloat`, `isNaN`, `isInf`, `isNil`, `default`, and expr's
//!   `len`, `abs`, `ceil`, `floor`, `round`, `max`, `min`, `sum`, `first`, `last`, `string`,
//!   `int`, `float`, `lower`, `upper`, `trim`, and the predicate builtins `all`, `any`, `none`,
//!   `one`, `filter`, `map`, `count`, `sum`, whose second argument is evaluated per element with
//!   `#` (or a leading `.`, for `#.`) bound to it: `all(result, {# > 0.9})` or
//!   `all(result, # > 0.9)`; `count` and `sum` may leave it out.
//!
//! Equality never fails: values of different types are unequal, and numbers compare by value.
//! Ordering a number against a string, arithmetic on the wrong types, an index past the end and
//! the like are evaluation errors, which the analysis records as the measurement's error.
//!
//! # Deliberate differences from upstream
//!
//! - `isNil(x)` and `default(x, d)` look at their argument `x`; upstream's ignore it and test
//!   the whole `result`. A missing index or key while evaluating `x` counts as nil, so that
//!   `default(result[0], 0)` is `0` on an empty vector instead of an error.
//! - Every number is a float64, as JSON and Prometheus numbers are: `%` works on fractions,
//!   `int(x)` and `asInt(x)` truncate but stay float64, integer overflow cannot happen.
//! - `len` counts characters, not bytes; `string(x)` prints `x` as measurements are printed.
//! - Unknown names, unknown functions and wrong argument counts are compile errors, found
//!   without knowing `result`'s type, as upstream cannot either; type errors are found when
//!   evaluating.
//! - Not supported (compile errors): `matches` (regular expressions), map literals, slices
//!   (`a[1:2]`), ranges (`1..3`), the pipe (`|`), `let`, `#index`, and the other builtins.
//! - A source is at most [`MAX_SOURCE_CHARS`] characters and nests at most 100 deep, so that
//!   neither compiling nor evaluating can exhaust the stack; and an evaluation fails once it has
//!   spent 10 million steps (see `budget.rs`), as nested predicates over a large result could
//!   otherwise run for hours.

mod ast;
mod budget;
mod eval;
mod functions;
mod lexer;
mod parser;
mod value;

#[cfg(test)]
mod tests;

pub use value::Value;

/// The longest condition accepted; real ones are a line or two.
pub const MAX_SOURCE_CHARS: usize = 4096;

/// A condition that compiled, ready to evaluate against measurements.
#[derive(Clone, Debug)]
pub struct Condition {
    source: String,
    root: ast::Expr,
}

/// Why a condition does not compile, and where: the 1-based character column.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[error("column {column}: {reason}")]
pub struct CompileError {
    pub column: usize,
    pub reason: String,
}

/// Why evaluating a condition against a measurement failed.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[error("{0}")]
pub struct EvalError(pub String);

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, CompileError> {
        if source.chars().nth(MAX_SOURCE_CHARS).is_some() {
            return Err(CompileError {
                column: MAX_SOURCE_CHARS + 1,
                reason: format!("expression longer than {MAX_SOURCE_CHARS} characters"),
            });
        }
        let root = parser::parse(source)?;
        Ok(Condition { source: source.to_owned(), root })
    }

    /// Whether the condition holds for `result`; a condition that is not a bool is an error, and
    /// so is one that would take too long.
    pub fn evaluate(&self, result: &Value) -> Result<bool, EvalError> {
        self.evaluate_within(result, budget::MAX_COST)
    }

    fn evaluate_within(&self, result: &Value, max_cost: usize) -> Result<bool, EvalError> {
        let budget = budget::Budget::new(max_cost);
        let scope = eval::Scope { result, element: None, budget: &budget };
        match eval::eval(&self.root, scope).map_err(|failure| EvalError(failure.message()))?.as_ref() {
            Value::Bool(holds) => Ok(*holds),
            other => Err(EvalError(format!("expected bool, but got {}", other.type_name()))),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}
