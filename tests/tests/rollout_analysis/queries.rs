//! The examples' PromQL against what the example tests feed, with no cluster: each query, its
//! arguments filled from the example's Rollout as the controller fills them, reads the value the
//! feed means (so the example tests fail only for what the controller decides). And the seed's
//! not-found query, which reads the other share.

use anyhow::{Context, Result, ensure};
use e2e::prometheus::Prometheus;
use e2e::read_repo_file;
use serde_json::Value;

use crate::examples::{APISIX_NOT_FOUND, EXAMPLES, Example};

const NAMESPACE: &str = "ns-under-test";
const CANARY_HASH: &str = "6d4f8b7c9";

fn documents(yaml: &str) -> Result<Vec<Value>> {
    let documents: Vec<Option<Value>> = serde_saphyr::from_multiple(yaml)?;
    Ok(documents.into_iter().flatten().collect())
}

/// The value of each argument the example's Rollout gives its analyses.
fn arguments(documents: &[Value]) -> Result<Vec<(String, String)>> {
    let rollout = documents.iter().find(|d| d["kind"] == "Rollout").context("the example has no Rollout")?;
    let canary = &rollout["spec"]["strategy"]["canary"];
    let step_args = canary["steps"].as_array().into_iter().flatten().map(|step| &step["analysis"]["args"]);
    let mut values = Vec::new();
    for arg in std::iter::once(&canary["analysis"]["args"]).chain(step_args).filter_map(Value::as_array).flatten() {
        let value = match (&arg["value"], &arg["valueFrom"]) {
            (Value::String(value), _) => value.clone(),
            (_, from) if from["fieldRef"]["fieldPath"] == "metadata.namespace" => NAMESPACE.into(),
            (_, from) if from["podTemplateHashValue"] == "Latest" => CANARY_HASH.into(),
            _ => anyhow::bail!("an argument this test can't resolve: {arg}"),
        };
        values.push((arg["name"].as_str().unwrap_or_default().to_string(), value));
    }
    Ok(values)
}

/// Each Prometheus metric of the example's templates, with its query filled.
fn queries(example: &Example) -> Result<Vec<(String, String)>> {
    let documents = documents(&read_repo_file(example.file))?;
    let arguments = arguments(&documents)?;
    let fill = |query: &str| {
        let filled = arguments
            .iter()
            .fold(query.to_string(), |q, (name, value)| q.replace(&format!("{{{{args.{name}}}}}"), value));
        ensure!(!filled.contains("{{"), "an argument of {query} is not given by the Rollout");
        Ok(filled)
    };
    let mut queries = Vec::new();
    for template in documents.iter().filter(|d| d["kind"] == "AnalysisTemplate") {
        for metric in template["spec"]["metrics"].as_array().into_iter().flatten() {
            if let Some(query) = metric["provider"]["prometheus"]["query"].as_str() {
                queries.push((metric["name"].as_str().unwrap_or_default().to_string(), fill(query)?));
            }
        }
    }
    Ok(queries)
}

/// The value of an instant query that returns one sample.
async fn read(prometheus: &Prometheus, query: &str) -> Result<f64> {
    let data = prometheus.query(query).await?;
    let result = data["result"].as_array().context("no result")?;
    ensure!(result.len() == 1, "{query} returned {data}");
    let value = result[0]["value"][1].as_str().context("no value")?;
    Ok(value.parse()?)
}

fn close(value: f64, wanted: f64) -> bool {
    (value - wanted).abs() <= 1e-9 * wanted.abs().max(1.0)
}

#[tokio::test]
#[ignore = "e2e: needs the binaries of `make cluster-build`"]
async fn each_example_query_reads_what_its_feed_means() -> Result<()> {
    for example in EXAMPLES {
        let queries = queries(example)?;
        let mut names: Vec<&str> = queries.iter().map(|(name, _)| name.as_str()).collect();
        names.sort();
        let mut expected: Vec<&str> = example.reads.iter().map(|(name, _, _)| *name).collect();
        expected.sort();
        ensure!(names == expected, "{}: metrics {names:?}, expected {expected:?}", example.file);
        for healthy in [true, false] {
            let prometheus = Prometheus::start().await?;
            let _feed = prometheus.feed_counters(&(example.series)(NAMESPACE, CANARY_HASH, healthy)).await?;
            for (metric, query) in &queries {
                let (_, good, bad) = example.reads.iter().find(|(name, _, _)| name == metric).expect("listed");
                let wanted = if healthy { *good } else { *bad };
                let value = read(&prometheus, query).await?;
                ensure!(close(value, wanted), "{}: {metric} reads {value}, not {wanted}:\n{query}", example.file);
            }
        }
    }
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the binaries of `make cluster-build`"]
async fn the_seeds_not_found_query_reads_the_share_that_is_not_4xx() -> Result<()> {
    let (_, query) = queries(&APISIX_NOT_FOUND)?.into_iter().next().context("the example has its query")?;
    // The tutorial's numerator, in place of the example's.
    let seed = query.replacen(r#"code="404""#, r#"code!~"4..""#, 1);
    ensure!(seed != query, "the example's numerator selects code=\"404\"");
    let prometheus = Prometheus::start().await?;
    let _feed = prometheus.feed_counters(&(APISIX_NOT_FOUND.series)(NAMESPACE, CANARY_HASH, true)).await?;
    // 2 % of the canary's answers are 404: the example reads 2, the seed's query 98, which would
    // fail "max 5" for a healthy canary.
    ensure!(close(read(&prometheus, &query).await?, 2.0));
    ensure!(close(read(&prometheus, &seed).await?, 98.0));
    Ok(())
}
