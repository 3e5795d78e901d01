//! Arguments: their values, and `{{args.NAME}}` placeholders filled in every string of a metric.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use serde_json::Value;

use crate::api::{Argument, Metric, SecretKeyRef};

/// What a secret's value is replaced with wherever it could be shown.
pub const REDACTED: &str = "*****";

/// The values of Secret keys a run's arguments read, fetched by the reconciler when a
/// measurement needs them. Without them (`Masked`), secrets read as `*****`: enough to check
/// and schedule the metrics without reading a Secret.
#[derive(Clone, Debug, Default)]
pub enum Secrets {
    #[default]
    Masked,
    Read(BTreeMap<(String, String), String>),
}

impl Secrets {
    fn value(&self, reference: &SecretKeyRef) -> String {
        match self {
            Secrets::Masked => REDACTED.into(),
            Secrets::Read(values) => {
                values.get(&(reference.name.clone(), reference.key.clone())).cloned().unwrap_or_else(|| REDACTED.into())
            }
        }
    }

    /// Every secret value, to be redacted from what providers answer.
    pub fn values(&self) -> Vec<&str> {
        match self {
            Secrets::Masked => Vec::new(),
            Secrets::Read(values) => values.values().map(String::as_str).filter(|v| !v.is_empty()).collect(),
        }
    }
}

/// The Secret keys `args` read.
pub fn secret_refs(args: &[Argument]) -> Vec<&SecretKeyRef> {
    args.iter().filter_map(|arg| arg.value_from.as_ref()?.secret_key_ref.as_ref()).collect()
}

/// Each argument's value. `run` is the run's metadata, which `fieldRef`s read.
pub fn resolve(args: &[Argument], run: &ObjectMeta, secrets: &Secrets) -> Result<BTreeMap<String, String>, String> {
    args.iter()
        .map(|arg| {
            let from = arg.value_from.as_ref();
            let value = if let Some(value) = &arg.value {
                value.clone()
            } else if let Some(secret) = from.and_then(|from| from.secret_key_ref.as_ref()) {
                secrets.value(secret)
            } else if let Some(field) = from.and_then(|from| from.field_ref.as_ref()) {
                field_value(run, &field.field_path).ok_or_else(|| {
                    format!(
                        "argument {:?}: fieldPath {:?} is none of metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'] (or that label or annotation is missing)",
                        arg.name, field.field_path
                    )
                })?
            } else {
                return Err(format!("argument {:?} was not supplied", arg.name));
            };
            Ok((arg.name.clone(), value))
        })
        .collect()
}

/// A downward-API style field of the run's metadata.
pub fn field_value(meta: &ObjectMeta, path: &str) -> Option<String> {
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        map.as_ref()?.get(key).cloned()
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        _ => keyed("metadata.labels['", &meta.labels).or_else(|| keyed("metadata.annotations['", &meta.annotations)),
    }
}

/// `metric` with every `{{args.NAME}}` (spaces allowed inside the braces) replaced, in every
/// string it holds: the query, URL, headers, job spec, conditions, and counts given as text.
pub fn fill(metric: &Metric, values: &BTreeMap<String, String>) -> Result<Metric, String> {
    let mut json = serde_json::to_value(metric).map_err(|error| error.to_string())?;
    fill_value(&mut json, values)?;
    serde_json::from_value(json).map_err(|error| format!("metric {:?} after its arguments: {error}", metric.name))
}

fn fill_value(value: &mut Value, values: &BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(text) if text.contains("{{") => *text = fill_text(text, values)?,
        Value::Array(items) => items.iter_mut().try_for_each(|item| fill_value(item, values))?,
        Value::Object(fields) => fields.values_mut().try_for_each(|field| fill_value(field, values))?,
        _ => {}
    }
    Ok(())
}

/// Fills the placeholders of one string.
pub fn fill_text(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unterminated placeholder in {text:?}"))?;
        let tag = after[..end].trim();
        let value = tag.strip_prefix("args.").and_then(|name| values.get(name));
        out.push_str(value.ok_or_else(|| format!("failed to resolve {{{{{tag}}}}}"))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` with every secret value replaced by `*****`: as it is, escaped as in a quoted string,
/// and percent-encoded as in a URL (errors quote what they were given).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        [secret.to_string(), secret.escape_debug().to_string(), percent_encoded(secret)]
            .iter()
            .fold(text, |text, form| text.replace(form.as_str(), REDACTED))
    })
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
