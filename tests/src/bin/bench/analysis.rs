//! The analysis phase: AnalysisRuns beside the Rollouts, each with one Prometheus metric every
//! 10 s against a real Prometheus on 127.0.0.1, measured over a window once all have started.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use e2e::apply_yaml;
use e2e::process::http_get;
use e2e::prometheus::Prometheus;
use futures::{StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::api::{Api, ListParams};
use rollouts_controller::api::AnalysisRun;

use super::{Controller, MIB, NAMESPACE, Row, delta, row};

const INTERVAL: Duration = Duration::from_secs(10);

fn run_yaml(index: usize, prometheus: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: run-{index:04}}}
spec:
  metrics:
  - name: success-rate
    interval: {}s
    successCondition: len(result) > 0 && result[0] >= 0.99
    provider:
      prometheus:
        address: {prometheus}
        query: 'bench_success_rate{{service="app-{index:04}"}}'
"#,
        INTERVAL.as_secs()
    )
}

/// Sums the samples of `name` (a counter, or histogram buckets by their `le`) in a text
/// exposition.
fn scrape(text: &str, name: &str, filter: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with(name) && line.contains(filter)) {
        let key = line.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("").to_string();
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *sums.entry(key).or_insert(0.0) += value;
    }
    sums
}

/// A percentile of a histogram given as cumulative bucket counts by upper bound, interpolated
/// within its bucket.
fn histogram_percentile(buckets: &BTreeMap<String, f64>, p: f64) -> f64 {
    let mut bounds: Vec<(f64, f64)> = buckets
        .iter()
        .map(|(le, count)| (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(0.0) }, *count))
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last().map_or(0.0, |b| b.1);
    let rank = total * p / 100.0;
    let mut lower = (0.0, 0.0);
    for (bound, count) in bounds {
        if count >= rank && count > lower.1 {
            if bound.is_infinite() {
                return lower.0;
            }
            return lower.0 + (bound - lower.0) * (rank - lower.1) / (count - lower.1);
        }
        lower = (bound, count);
    }
    lower.0
}

async fn metrics_text(address: std::net::SocketAddr) -> Result<String> {
    Ok(http_get(address, "/metrics").await?.1)
}

pub async fn phase(client: &Client, controller: &Controller, runs: usize, window: Duration) -> Result<Vec<Row>> {
    let prometheus = Prometheus::start().await?;
    let samples: String =
        (0..runs).map(|index| format!("bench_success_rate{{service=\"app-{index:04}\"}} 0.999\n")).collect();
    prometheus.push(&samples).await?;
    let url = prometheus.url();
    let created = Instant::now();
    stream::iter(0..runs)
        .map(|index| {
            let (client, yaml) = (client.clone(), run_yaml(index, &url));
            async move { apply_yaml(&client, Some(NAMESPACE), &yaml).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    // Every run has measured once before the window opens.
    let api: Api<AnalysisRun> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        let list = api.list(&ListParams::default()).await?;
        let measured = list
            .items
            .iter()
            .filter(|run| run.status.as_ref().is_some_and(|s| s.metric_results.iter().any(|r| r.count > 0)))
            .count();
        if measured == runs {
            break;
        }
        if created.elapsed() > Duration::from_secs(600) {
            bail!("only {measured} of {runs} AnalysisRuns measured after 600 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("bench: {runs} AnalysisRuns measuring after {:?}", created.elapsed());
    // Pushed samples go stale after 5 minutes: push them again so the window keeps its data.
    prometheus.push(&samples).await?;

    controller.new_phase();
    let prometheus_address = url.trim_start_matches("http://").parse()?;
    let before = (metrics_text(controller.admin).await?, metrics_text(prometheus_address).await?);
    let requests_before = controller.requests_by_resource().await?;
    let cpu_before = controller.usage()?.cpu_seconds;
    tokio::time::sleep(window).await;
    let after = (metrics_text(controller.admin).await?, metrics_text(prometheus_address).await?);
    let requests = delta(&controller.requests_by_resource().await?, &requests_before);
    let cpu = controller.usage()?.cpu_seconds - cpu_before;

    let measurements =
        |text: &str| scrape(text, "rollouts_controller_analysis_measurements_total", "").values().sum::<f64>();
    let taken = measurements(&after.0) - measurements(&before.0);
    let queries =
        |text: &str| scrape(text, "prometheus_http_requests_total", "handler=\"/api/v1/query\"").values().sum::<f64>();
    let received = queries(&after.1) - queries(&before.1);
    let lateness = |text: &str| scrape(text, "rollouts_controller_analysis_measurement_lateness_seconds_bucket", "");
    let lateness = delta(&lateness(&after.0), &lateness(&before.0));
    let due = runs as f64 * window.as_secs_f64() / INTERVAL.as_secs_f64();
    let status_writes = requests.get("patch analysisruns").copied().unwrap_or(0.0);
    let (steady, peak) = (controller.median() as f64 / MIB, controller.peak() as f64 / MIB);
    let (p50, p99) = (histogram_percentile(&lateness, 50.0), histogram_percentile(&lateness, 99.0));
    Ok(vec![
        row("AnalysisRuns (one Prometheus metric every 10 s), beside the Rollouts", runs.to_string(), "", None),
        row(
            &format!("measurements taken over {:.0} s (due: {due:.0})", window.as_secs_f64()),
            format!("{taken:.0}"),
            "",
            None,
        ),
        row(
            "queries Prometheus received over the same window",
            format!("{received:.0}"),
            "= measurements (±1%)",
            Some((received - taken).abs() <= taken * 0.01 + 1.0),
        ),
        row(
            "AnalysisRun status writes per measurement",
            format!("{:.2}", status_writes / taken.max(1.0)),
            "≤ 1",
            Some(status_writes <= taken),
        ),
        row(
            "measurement lateness (due → taken)",
            format!("p50 {:.0} ms / p99 {:.0} ms", p50 * 1000.0, p99 * 1000.0),
            "p99 ≤ 1 s",
            Some(p99 <= 1.0),
        ),
        row("CPU, analysis phase", format!("{cpu:.1} s over {:.0} s", window.as_secs_f64()), "", None),
        row("RSS steady, 1,000 Rollouts + the AnalysisRuns", format!("{steady:.1} MiB"), "", None),
        row("RSS peak, analysis phase", format!("{peak:.1} MiB"), "≤ 96 MiB", Some(peak <= 96.0)),
    ])
}
