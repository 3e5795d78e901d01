//! Reading the canary steps: weights in force, setCanaryScale, pause durations, step names.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{CanaryStep, SetCanaryScale, parse_go_duration};

/// Weight of the most recent `setWeight` at or before `index`, 0 if none; `max` (all of it) past
/// the last step.
pub fn set_weight_at(steps: &[CanaryStep], index: usize, max: i32) -> i32 {
    if index >= steps.len() {
        return max;
    }
    set_weight_through(steps, index + 1)
}

/// Weight of the most recent `setWeight` strictly before `index`, 0 if none.
pub fn set_weight_before(steps: &[CanaryStep], index: usize) -> i32 {
    set_weight_through(steps, index.min(steps.len()))
}

fn set_weight_through(steps: &[CanaryStep], end: usize) -> i32 {
    steps[..end].iter().rev().find_map(|step| step.set_weight).unwrap_or(0)
}

/// The `setCanaryScale` in force at `index`: the most recent one at or before it, unless that one
/// hands the canary's size back to the traffic weight (`matchTrafficWeight`).
pub fn canary_scale_at(steps: &[CanaryStep], index: usize) -> Option<&SetCanaryScale> {
    let end = (index + 1).min(steps.len());
    let scale = steps[..end].iter().rev().find_map(|step| step.set_canary_scale.as_ref())?;
    (!scale.match_traffic_weight.unwrap_or(false)).then_some(scale)
}

/// Longer pauses are refused: their end would be past any time a clock can name.
const MAX_PAUSE_SECONDS: u64 = 1_000_000_000_000;

/// A pause duration: a number of seconds, or a Go-style duration such as "1m30s". `None` when
/// the text is not a valid duration or is longer than 31,000 years.
pub fn parse_duration(value: &IntOrString) -> Option<Duration> {
    let seconds = match value {
        IntOrString::Int(seconds) => u64::try_from(*seconds).ok(),
        IntOrString::String(text) => parse_duration_text(text),
    }?;
    (seconds < MAX_PAUSE_SECONDS).then(|| Duration::from_secs(seconds))
}

/// Whole seconds of a duration text: plain seconds, or a Go duration.
fn parse_duration_text(text: &str) -> Option<u64> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    // Like upstream, fractions of a second are dropped.
    parse_go_duration(text).map(|duration| duration.as_secs())
}

/// How a step reads in Events and messages, e.g. `setWeight: 10`, `pause: 30s`.
pub fn describe_step(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        return format!("setWeight: {weight}");
    }
    if let Some(pause) = &step.pause {
        return match &pause.duration {
            Some(IntOrString::Int(seconds)) => format!("pause: {seconds}s"),
            Some(IntOrString::String(text)) => format!("pause: {text}"),
            None => "pause".into(),
        };
    }
    if let Some(scale) = &step.set_canary_scale {
        return match (scale.replicas, scale.weight, scale.match_traffic_weight) {
            (Some(replicas), _, _) => format!("setCanaryScale{{replicas: {replicas}}}"),
            (None, Some(weight), _) => format!("setCanaryScale{{weight: {weight}}}"),
            _ => "setCanaryScale{matchTrafficWeight: true}".into(),
        };
    }
    if let Some(analysis) = &step.analysis {
        let names: Vec<&str> = analysis.templates.iter().map(|t| t.template_name.as_str()).collect();
        return format!("analysis: {}", names.join(", "));
    }
    if let Some(route) = &step.set_header_route {
        return match &route.matches {
            Some(matches) if !matches.is_empty() => format!("setHeaderRoute: {}", route.name),
            _ => format!("setHeaderRoute: {} removed", route.name),
        };
    }
    "unsupported step".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RolloutPause;

    fn weight(w: i32) -> CanaryStep {
        CanaryStep { set_weight: Some(w), ..Default::default() }
    }
    fn pause() -> CanaryStep {
        CanaryStep { pause: Some(RolloutPause::default()), ..Default::default() }
    }
    fn scale(replicas: Option<i32>, matches: bool) -> CanaryStep {
        CanaryStep {
            set_canary_scale: Some(SetCanaryScale {
                replicas,
                weight: None,
                match_traffic_weight: matches.then_some(true),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn set_weight_follows_the_most_recent_step() {
        let steps = [pause(), weight(10), pause(), weight(50)];
        assert_eq!(set_weight_at(&steps, 0, 100), 0);
        assert_eq!(set_weight_at(&steps, 1, 100), 10);
        assert_eq!(set_weight_at(&steps, 2, 100), 10);
        assert_eq!(set_weight_at(&steps, 3, 100), 50);
        assert_eq!(set_weight_at(&steps, 4, 100), 100, "past the last step");
        assert_eq!(set_weight_at(&steps, 4, 1000), 1000, "all of maxTrafficWeight");
        assert_eq!(set_weight_before(&steps, 3), 10);
        assert_eq!(set_weight_before(&steps, 1), 0);
        assert_eq!(set_weight_at(&[], 0, 100), 100);
    }

    #[test]
    fn set_canary_scale_holds_until_match_traffic_weight() {
        let steps = [scale(Some(2), false), pause(), scale(None, true), weight(10)];
        assert_eq!(canary_scale_at(&steps, 0).and_then(|s| s.replicas), Some(2));
        assert_eq!(canary_scale_at(&steps, 1).and_then(|s| s.replicas), Some(2));
        assert!(canary_scale_at(&steps, 2).is_none());
        assert!(canary_scale_at(&steps, 3).is_none());
        assert!(canary_scale_at(&[weight(5)], 0).is_none());
    }

    #[test]
    fn durations_parse_like_go() {
        let secs = |s: &str| parse_duration(&IntOrString::String(s.into())).map(|d| d.as_secs());
        assert_eq!(parse_duration(&IntOrString::Int(10)), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration(&IntOrString::Int(-1)), None);
        assert_eq!(secs("30"), Some(30));
        assert_eq!(secs("30s"), Some(30));
        assert_eq!(secs("1m30s"), Some(90));
        assert_eq!(secs("1h"), Some(3600));
        assert_eq!(secs("1.5s"), Some(1));
        assert_eq!(secs("500ms"), Some(0));
        assert_eq!(secs("10x"), None);
        assert_eq!(secs("s"), None);
        assert_eq!(secs(""), None);
        assert_eq!(secs("99999999999999"), None, "beyond any clock");
        assert_eq!(secs("9999999999h"), None);
    }

    #[test]
    fn steps_describe_themselves_like_upstream() {
        assert_eq!(describe_step(&weight(10)), "setWeight: 10");
        assert_eq!(describe_step(&pause()), "pause");
        let timed = CanaryStep {
            pause: Some(RolloutPause { duration: Some(IntOrString::String("10s".into())) }),
            ..Default::default()
        };
        assert_eq!(describe_step(&timed), "pause: 10s");
        assert_eq!(describe_step(&scale(Some(3), false)), "setCanaryScale{replicas: 3}");
        assert_eq!(describe_step(&scale(None, true)), "setCanaryScale{matchTrafficWeight: true}");
    }
}
