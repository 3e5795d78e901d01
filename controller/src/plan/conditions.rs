//! Rollout conditions with upstream's types, reasons and timestamp rules.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::RolloutCondition;

// Condition types.
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const PAUSED: &str = "Paused";
pub const HEALTHY: &str = "Healthy";
pub const COMPLETED: &str = "Completed";
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(value: bool) -> Self {
        if value { Status::True } else { Status::False }
    }
}

pub fn find<'a>(conditions: &'a [RolloutCondition], type_: &str) -> Option<&'a RolloutCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition. An identical one is left alone; the transition time moves only when the
/// status changes, the update time whenever anything does.
pub fn set(
    conditions: &mut Vec<RolloutCondition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let (now, status) = (Time(now), status.as_str());
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) if existing.status == status && existing.reason == reason && existing.message == message => {}
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.into();
            existing.reason = reason.into();
            existing.message = message.into();
            existing.last_update_time = now;
        }
        None => conditions.push(RolloutCondition {
            type_: type_.into(),
            status: status.into(),
            last_update_time: now.clone(),
            last_transition_time: now,
            reason: reason.into(),
            message: message.into(),
        }),
    }
}

/// Marks progress: like `set`, but always moves the update time, which the progress deadline
/// counts from.
pub fn touch(
    conditions: &mut Vec<RolloutCondition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    set(conditions, type_, status, reason, message, now);
    if let Some(condition) = conditions.iter_mut().find(|c| c.type_ == type_) {
        condition.last_update_time = Time(now);
    }
}

pub fn remove(conditions: &mut Vec<RolloutCondition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::reasons;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut conditions = Vec::new();
        set(&mut conditions, PROGRESSING, Status::True, reasons::REPLICA_SET_UPDATED, "a", at(1));
        set(&mut conditions, PROGRESSING, Status::True, reasons::REPLICA_SET_UPDATED, "a", at(2));
        assert_eq!(conditions[0].last_update_time, Time(at(1)), "identical: untouched");
        set(&mut conditions, PROGRESSING, Status::True, reasons::NEW_REPLICA_SET_AVAILABLE, "b", at(3));
        assert_eq!(
            (conditions[0].last_transition_time.clone(), conditions[0].last_update_time.clone()),
            (Time(at(1)), Time(at(3)))
        );
        set(&mut conditions, PROGRESSING, Status::False, reasons::ROLLOUT_ABORTED, "c", at(4));
        assert_eq!(conditions[0].last_transition_time, Time(at(4)));
        touch(&mut conditions, PROGRESSING, Status::False, reasons::ROLLOUT_ABORTED, "c", at(5));
        assert_eq!(conditions[0].last_update_time, Time(at(5)));
        remove(&mut conditions, PROGRESSING);
        assert!(conditions.is_empty());
    }
}
