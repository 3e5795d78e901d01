//! A provider's value judged by the metric's conditions.

use super::condition::{Condition, Value};
use super::metric::Prepared;
use crate::api::AnalysisPhase;

/// Longest value kept in a measurement or a message: a whole web page or thousands of series
/// would make the run's status too big to write.
const SHOWN_CHARACTERS: usize = 1024;

/// A value as the status shows it, cut at `SHOWN_CHARACTERS`.
pub fn shown(value: &Value) -> String {
    let text = value.to_string();
    let length = text.chars().count();
    if length <= SHOWN_CHARACTERS {
        return text;
    }
    let kept: String = text.chars().take(SHOWN_CHARACTERS).collect();
    format!("{kept}… ({} more characters)", length - SHOWN_CHARACTERS)
}

/// The phase of a measurement whose provider answered `value`, and why (for its message).
pub fn judge(prepared: &Prepared, value: &Value) -> (AnalysisPhase, Option<String>) {
    let shown_value = shown(value);
    let check = |name: &str, condition: &Option<Condition>| -> Result<Option<bool>, String> {
        let Some(condition) = condition else { return Ok(None) };
        condition.evaluate(value).map(Some).map_err(|error| {
            let source = condition.source();
            if value.is_empty_result() {
                format!(
                    "no data: the provider returned {value}, and {name} \"{source}\" could not be evaluated on it ({}); guard it with len(result) > 0 or default()",
                    error.0
                )
            } else {
                format!("could not evaluate {name} \"{source}\": {}", error.0)
            }
        })
    };
    let outcome = check("successCondition", &prepared.success)
        .and_then(|success| Ok((success, check("failureCondition", &prepared.failure)?)));
    let (success, failure) = match outcome {
        Ok(both) => both,
        Err(message) => return (AnalysisPhase::Error, Some(message)),
    };
    let quoted = |condition: &Option<Condition>| condition.as_ref().map(|c| c.source().to_string()).unwrap_or_default();
    match (success, failure) {
        (_, Some(true)) => (
            AnalysisPhase::Failed,
            Some(format!("value {shown_value} satisfies failureCondition \"{}\"", quoted(&prepared.failure))),
        ),
        (Some(false), None) => (
            AnalysisPhase::Failed,
            Some(format!("value {shown_value} does not satisfy successCondition \"{}\"", quoted(&prepared.success))),
        ),
        (Some(false), Some(false)) => (
            AnalysisPhase::Inconclusive,
            Some(format!(
                "value {shown_value} satisfies neither successCondition \"{}\" nor failureCondition \"{}\"",
                quoted(&prepared.success),
                quoted(&prepared.failure)
            )),
        ),
        _ => (AnalysisPhase::Successful, None),
    }
}
