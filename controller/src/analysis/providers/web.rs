//! `web`: an HTTP request; its JSON answer (or a part of it, by jsonPath) is the result.

use std::collections::BTreeMap;

use jsonpath_rust::JsonPath;
use serde_json::Value as Json;

use super::{Answer, describe, timeout};
use crate::analysis::condition::Value;
use crate::api::WebMetric;

pub async fn call(http: &reqwest::Client, metric: &WebMetric) -> Result<Answer, String> {
    let method = metric.method.as_deref().unwrap_or("GET");
    let url = reqwest::Url::parse(&metric.url).map_err(|error| format!("url {:?}: {error}", metric.url))?;
    let mut request = match method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        "PUT" => http.put(url),
        other => return Err(format!("method {other:?}: use GET, POST or PUT")),
    };
    request = request.timeout(timeout(metric.timeout_seconds, 10));
    for header in &metric.headers {
        request = request.header(&header.key, &header.value);
    }
    if metric.authentication.is_some() {
        return Err("web authentication (oauth2) is not supported by this controller yet".into());
    }
    match (&metric.body, &metric.json_body) {
        (Some(_), Some(_)) => return Err("set body or jsonBody, not both".into()),
        (None, None) => {}
        _ if method == "GET" => {
            return Err("Body/JSONBody can only be used with POST or PUT WebMetric Method types".into());
        }
        (Some(body), None) => request = request.body(body.clone()),
        (None, Some(json)) => {
            request = request.header("Content-Type", "application/json").body(json.to_string());
        }
    }
    let response = request.send().await.map_err(|error| format!("calling {}: {}", metric.url, describe(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("received non 2xx response code: {}", status.as_u16()));
    }
    let body = response.text().await.map_err(|error| format!("reading the answer: {}", describe(&error)))?;
    let Ok(json) = serde_json::from_str::<Json>(&body) else {
        // Not JSON: the conditions see the text.
        return Ok(Answer { value: Value::String(body), metadata: BTreeMap::new() });
    };
    let path = metric.json_path.as_deref().unwrap_or("{$}");
    let value = select(&json, path)?;
    Ok(Answer { value: Value::from(value), metadata: BTreeMap::new() })
}

/// The first match of a Kubernetes-style JSONPath (`{$.data.ok}`, braces optional).
fn select(json: &Json, path: &str) -> Result<Json, String> {
    let inner = path.trim().strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path).trim();
    let inner = if inner.starts_with('$') { inner.to_string() } else { format!("${inner}") };
    let matches = json.query(&inner).map_err(|error| format!("jsonPath {path:?}: {error}"))?;
    matches.first().map(|value| (*value).clone()).ok_or_else(|| "result of web metric produced no value".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_paths_read_like_kubectl_s() {
        let answer = json!({"data": {"ok": true, "items": [{"rate": 0.97}, {"rate": 0.5}]}});
        assert_eq!(select(&answer, "{$}"), Ok(answer.clone()));
        assert_eq!(select(&answer, "{$.data.ok}"), Ok(json!(true)));
        assert_eq!(select(&answer, "{.data.items[0].rate}"), Ok(json!(0.97)));
        assert_eq!(select(&answer, "$.data.items[1].rate"), Ok(json!(0.5)));
        assert_eq!(select(&answer, "{$.data.missing}"), Err("result of web metric produced no value".into()));
        assert!(select(&answer, "{$.data[}").is_err());
    }
}
