//! How much work one evaluation may do. A condition is short, but nested predicates multiply:
//! `all(result, all(result, ...))` is quadratic in the measurement's size, and every further
//! level multiplies again, so depth limits alone do not bound the time or the memory taken.

use std::borrow::Cow;
use std::cell::Cell;

use super::eval::{Failure, invalid};
use super::value::Value;

/// What an evaluation may spend: each node evaluated costs 1, and each value copied or compared
/// costs its size. A condition over a measurement of 100,000 samples spends about a million.
pub(super) const MAX_COST: usize = 10_000_000;

pub(super) struct Budget {
    limit: usize,
    remaining: Cell<usize>,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget { limit, remaining: Cell::new(limit) }
    }

    pub fn spend(&self, cost: usize) -> Result<(), Failure> {
        let remaining = self.remaining.get().checked_sub(cost);
        self.remaining.set(remaining.unwrap_or(0));
        remaining.map(drop).ok_or_else(|| {
            invalid(format!(
                "evaluation too costly: more than {} steps (nested predicates over a large result?)",
                self.limit
            ))
        })
    }

    /// Pays for handling all of `value`.
    pub fn spend_on(&self, value: &Value) -> Result<(), Failure> {
        self.spend(size(value, self.remaining.get().saturating_add(1)))
    }

    /// `value`, paid for when it has to be copied.
    pub fn own(&self, value: Cow<'_, Value>) -> Result<Value, Failure> {
        if let Cow::Borrowed(borrowed) = value {
            self.spend_on(borrowed)?;
        }
        Ok(value.into_owned())
    }
}

/// How many values `value` is made of, counting no further than `limit`; without recursion, as
/// a measurement may nest deeply.
fn size(value: &Value, limit: usize) -> usize {
    if !matches!(value, Value::List(_) | Value::Map(_)) {
        return 1;
    }
    let mut pending = vec![value];
    let mut count = 0;
    while let Some(next) = pending.pop() {
        count += 1;
        if count >= limit {
            break;
        }
        match next {
            Value::List(items) => pending.extend(items),
            Value::Map(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    count
}
