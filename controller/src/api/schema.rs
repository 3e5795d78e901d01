//! Hand-written schema fragments for the generated CRD.
//!
//! Formats are checked with `pattern`/`minimum` rather than CEL: the apiserver applies them only
//! to values of the matching type, and they don't count against the CRD's CEL cost budget.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object the apiserver stores as given. Used for the pod template (validated when the
/// ReplicaSet is created) and for Argo fields this controller reports as not supported yet.
pub fn pass_through(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// A count or a percentage such as "25%".
pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "minimum": 0,
        "pattern": "^[0-9]+%?$"
    })
}

/// Seconds as a number, or a Go-style duration ("30s", "1m30s", "1h"). Bounded so that whatever
/// is admitted also parses: at most 9 digits of seconds (31 years), or at most six parts of at
/// most 6 digits each.
pub fn pause_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "minimum": 0,
        "maximum": 999_999_999,
        "pattern": "^([0-9]{1,9}|([0-9]{1,6}(\\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,6})$"
    })
}

/// A Go duration ("30s", "1m30s", "300ms"), or an `{{args.NAME}}` placeholder filled in when the
/// run starts.
pub fn go_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^(([0-9]{1,9}(\\.[0-9]{1,9})?(ns|us|µs|ms|s|m|h)){1,6}|.*\\{\\{.*\\}\\}.*)$"
    })
}

/// A count or limit: a number ≥ 0, or a string holding one or an `{{args.NAME}}` placeholder.
pub fn limit(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "minimum": 0,
        "pattern": "^([0-9]+|.*\\{\\{.*\\}\\}.*)$"
    })
}

/// failureLimit: like [`limit`], and -1 turns it off.
pub fn limit_or_disabled(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{ "type": "integer" }, { "type": "string" }],
        "minimum": -1,
        "pattern": "^(-1|[0-9]+|.*\\{\\{.*\\}\\}.*)$"
    })
}
