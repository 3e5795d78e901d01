//! The analysis examples (`examples/analysis/`), each applied as written but for its Prometheus
//! address and its load tester's URL, and updated once with traffic that passes (promoted to
//! 100 %) and once with traffic that fails (aborted automatically), with the traffic watched for
//! a Service or weight on pods that aren't available.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::prometheus::{CounterFeed, Prometheus};
use e2e::rollouts::status;
use e2e::traffic::{Routing, TrafficState, TrafficWatch};
use e2e::{TestNamespace, read_repo_file};
use rollouts_controller::api::{AnalysisPhase, Rollout};

use crate::support::{Aborting, Failure, LoadTester, RunWatch, check_run_identity, localize, run_name, run_phase};

/// Where Flagger's load tester answers in the examples (the tutorials' `test` namespace).
const FLAGGER_LOAD_TESTER: &str = "http://flagger-loadtester.test/";

/// Counters the canary's traffic leaves in Prometheus: `(series, per second)`, for a namespace
/// and the canary's pod-template hash, passing the example's checks or not.
type Series = fn(namespace: &str, canary_hash: &str, healthy: bool) -> Vec<(String, f64)>;

pub struct Example {
    pub file: &'static str,
    /// The Rollout, and the Deployment holding its template.
    pub name: &'static str,
    container: &'static str,
    new_image: &'static str,
    routing: fn() -> Routing,
    /// The example's Prometheus address.
    prometheus: &'static str,
    /// Whether its webhooks call Flagger's load tester.
    load_tester: bool,
    pub series: Series,
    /// Whether `series` needs the canary's hash (then the feed starts once it is known).
    needs_hash: bool,
    /// What each metric reads with healthy and with unhealthy traffic: `(metric, healthy,
    /// unhealthy)`.
    pub reads: &'static [(&'static str, f64, f64)],
    /// What the load tester must be asked to run: `(type, cmd)`.
    commands: &'static [(Option<&'static str>, &'static str)],
    /// The run that fails with unhealthy traffic: a step's, or (None) the background one.
    failing_step: Option<usize>,
    /// Its phase before it failed, as the Rollout saw it: `Pending` for a run that fails at its
    /// one measurement.
    failed_from: &'static str,
    failure: Failure<'static>,
}

fn services(stable: &str, canary: &str, virtual_service: Option<&str>) -> Routing {
    let routing = Routing::services(stable, canary);
    match virtual_service {
        Some(name) => routing.through("VirtualService", name),
        None => routing,
    }
}

pub const FLAGGER_NGINX: Example = Example {
    file: "examples/analysis/flagger-nginx-canary.yaml",
    name: "podinfo",
    container: "podinfod",
    new_image: "ghcr.io/stefanprodan/podinfo:6.0.1",
    routing: || services("podinfo", "podinfo-canary", None),
    prometheus: "http://flagger-prometheus.ingress-nginx:9090",
    load_tester: true,
    series: nginx_series,
    needs_hash: false,
    reads: &[("request-success-rate", 100.0, 90.0), ("request-duration", 200.0, 200.0)],
    commands: &[
        (Some("bash"), "curl -sd 'test' http://podinfo-canary/token | grep token"),
        (None, "hey -z 1m -q 10 -c 2 http://app.example.com/"),
    ],
    failing_step: Some(2),
    failed_from: "Pending",
    failure: Failure {
        metric: "request-success-rate",
        condition: "len(result) > 0 && result[0] < 99",
        failure_condition: true,
        failed: 1,
        failure_limit: 0,
    },
};

pub const APISIX_NOT_FOUND: Example = Example {
    file: "examples/analysis/apisix-not-found-percentage.yaml",
    name: "podinfo",
    container: "podinfod",
    new_image: "ghcr.io/stefanprodan/podinfo:6.0.1",
    routing: || Routing::services("podinfo", "podinfo-canary").through("ApisixRoute", "podinfo"),
    prometheus: "http://flagger-prometheus.apisix:9090",
    load_tester: true,
    series: apisix_series,
    needs_hash: false,
    reads: &[("not-found-percentage", 2.0, 20.0)],
    commands: &[(None, "hey -z 1m -q 10 -c 2 -h2 -host app.example.com http://apisix-gateway.apisix/api/info")],
    failing_step: Some(1),
    failed_from: "Pending",
    failure: Failure {
        metric: "not-found-percentage",
        condition: "result[0] <= 5",
        failure_condition: false,
        failed: 1,
        failure_limit: 0,
    },
};

pub const ISTIO_BACKGROUND: Example = Example {
    file: "examples/analysis/istio-background-analysis.yaml",
    name: "istio-bg",
    container: "demo",
    new_image: "argoproj/rollouts-demo:yellow",
    routing: || services("istio-bg-stable", "istio-bg-canary", Some("istio-bg")),
    prometheus: "http://prometheus.istio-system:9090",
    load_tester: false,
    series: istio_series,
    needs_hash: true,
    reads: &[("success-rate", 1.0, 0.5)],
    commands: &[],
    failing_step: None,
    failed_from: "Running",
    failure: Failure {
        metric: "success-rate",
        condition: "len(result) > 0 && result[0] >= 0.99",
        failure_condition: false,
        failed: 2,
        failure_limit: 1,
    },
};

pub const EXAMPLES: [&Example; 3] = [&FLAGGER_NGINX, &APISIX_NOT_FOUND, &ISTIO_BACKGROUND];

/// ingress-nginx's request counter and response-time summary. The canary's requests carry the
/// canary backend in `canary`; the stable's (no `canary` label) fail and are slow, and must not
/// count.
fn nginx_series(namespace: &str, _: &str, healthy: bool) -> Vec<(String, f64)> {
    let canary = format!(r#"namespace="{namespace}",ingress="podinfo",canary="{namespace}-podinfo-canary-80""#);
    let stable = format!(r#"namespace="{namespace}",ingress="podinfo""#);
    let (ok, errors) = if healthy { (20.0, 0.0) } else { (18.0, 2.0) };
    vec![
        (format!(r#"nginx_ingress_controller_requests{{{canary},status="200"}}"#), ok),
        (format!(r#"nginx_ingress_controller_requests{{{canary},status="500"}}"#), errors),
        (format!(r#"nginx_ingress_controller_requests{{{stable},status="503"}}"#), 50.0),
        // 200 ms per request on the canary, 5 s on the stable.
        (format!("nginx_ingress_controller_response_duration_seconds_sum{{{canary}}}"), (ok + errors) * 0.2),
        (format!("nginx_ingress_controller_response_duration_seconds_count{{{canary}}}"), ok + errors),
        (format!("nginx_ingress_controller_response_duration_seconds_sum{{{stable}}}"), 250.0),
        (format!("nginx_ingress_controller_response_duration_seconds_count{{{stable}}}"), 50.0),
    ]
}

/// APISIX's status counter: the rule the canary is weighted into answers 404 to 2 % (or 20 %) of
/// requests; another rule of the route, many 404s that must not count.
fn apisix_series(namespace: &str, _: &str, healthy: bool) -> Vec<(String, f64)> {
    let weighted = format!("{namespace}_podinfo_method");
    let other = format!("{namespace}_podinfo_other");
    let (ok, not_found) = if healthy { (49.0, 1.0) } else { (40.0, 10.0) };
    let status = |route: &str, code: u16| format!(r#"apisix_http_status{{route="{route}",code="{code}"}}"#);
    vec![
        (status(&weighted, 200), ok),
        (status(&weighted, 404), not_found),
        (status(&other, 200), 10.0),
        (status(&other, 404), 30.0),
    ]
}

/// Istio's request counter as the canary's sidecars report it (with their pods' hash label);
/// the callers' side (reporter="source") sees errors that must not count.
fn istio_series(namespace: &str, canary_hash: &str, healthy: bool) -> Vec<(String, f64)> {
    let series = |reporter: &str, code: u16| {
        format!(
            r#"istio_requests_total{{reporter="{reporter}",destination_workload_namespace="{namespace}",rollouts_pod_template_hash="{canary_hash}",response_code="{code}"}}"#
        )
    };
    let (ok, errors) = if healthy { (30.0, 0.0) } else { (15.0, 15.0) };
    vec![(series("destination", 200), ok), (series("destination", 503), errors), (series("source", 503), 30.0)]
}

/// An example updated once: its objects applied and Healthy, the counters fed, the traffic watched.
struct Updated {
    ns: TestNamespace,
    load_tester: LoadTester,
    watch: TrafficWatch,
    runs: RunWatch,
    rev1: String,
    rev2: String,
    _prometheus: Prometheus,
    _feed: CounterFeed,
    _controller: e2e::controller::RunningController,
}

impl Example {
    async fn update(&self, healthy: bool) -> Result<Updated> {
        let prefix = format!("ra-{}-{}", self.name, if healthy { "ok" } else { "bad" });
        let ns = TestNamespace::new(&prefix).await?;
        let prometheus = Prometheus::start().await?;
        let load_tester = LoadTester::start().await?;
        let controller = ns.start_controller().await?;
        let (prometheus_url, load_tester_url) = (prometheus.url(), load_tester.url());
        let mut replacements = vec![(self.prometheus, prometheus_url.as_str())];
        if self.load_tester {
            replacements.push((FLAGGER_LOAD_TESTER, load_tester_url.as_str()));
        }
        ns.apply(&localize(&read_repo_file(self.file), &replacements)?).await?;
        let rev1 = status(&ns.wait_phase(self.name, "Healthy").await?).stable_rs.context("no stable hash")?;
        let watch = ns.watch_traffic(&(self.routing)()).await?;
        let series = |hash: &str| (self.series)(&ns.name, hash, healthy);
        let early = if self.needs_hash { None } else { Some(prometheus.feed_counters(&series("")).await?) };
        let runs = RunWatch::start(&ns).await?;
        ns.set_deployment_image(self.name, self.container, self.new_image).await?;
        let updated = ns
            .wait_rollout(self.name, "the new revision", |r| {
                status(r).current_pod_hash.as_ref().is_some_and(|hash| *hash != rev1)
            })
            .await?;
        let rev2 = status(&updated).current_pod_hash.unwrap_or_default();
        let feed = match early {
            Some(feed) => feed,
            None => prometheus.feed_counters(&series(&rev2)).await?,
        };
        Ok(Updated {
            ns,
            load_tester,
            watch,
            runs,
            rev1,
            rev2,
            _prometheus: prometheus,
            _feed: feed,
            _controller: controller,
        })
    }

    /// Healthy traffic: every step's analysis passes once and the update is promoted; the
    /// background run (if any) is terminated then; the webhooks called the load tester.
    pub async fn promoted_when_healthy(&self) -> Result<()> {
        // Bound first: what isn't moved out (the controller, Prometheus, the feed) lives to the end.
        let updated = self.update(true).await?;
        let Updated { ns, load_tester, watch, runs, rev1, rev2, .. } = updated;
        let done = ns
            .wait_for::<Rollout>(self.name, "promoted", Duration::from_secs(240), |r| {
                status(r).phase.as_deref() == Some("Healthy") && status(r).stable_rs.as_ref() == Some(&rev2)
            })
            .await?;
        let canary = done.spec.strategy.canary.as_ref().context("a canary")?;
        let steps: Vec<usize> =
            canary.steps.iter().flatten().enumerate().filter(|(_, s)| s.analysis.is_some()).map(|(i, _)| i).collect();
        let mut expected: Vec<(String, Option<usize>)> =
            steps.iter().map(|step| (run_name(self.name, &rev2, 2, Some(*step)), Some(*step))).collect();
        if canary.analysis.is_some() {
            expected.push((run_name(self.name, &rev2, 2, None), None));
        }
        // As the watch saw them: the oldest are deleted beyond the history limit (5 Successful).
        let seen = e2e::poll_until(crate::support::TIMEOUT, || async {
            let seen = runs.runs()?;
            let ended = |(name, _): &(String, _)| seen.get(name).is_some_and(|run| run_phase(run).completed());
            Ok(expected.iter().all(ended).then_some(seen))
        })
        .await
        .context("every run to end")?;
        let names: Vec<&String> = seen.keys().collect();
        let mut wanted: Vec<&String> = expected.iter().map(|(name, _)| name).collect();
        wanted.sort();
        ensure!(names == wanted, "one run per analysis step and one background run: {names:?}, wanted {wanted:?}");
        for (name, step) in &expected {
            let run = &seen[name];
            check_run_identity(run, &done, &rev2, *step)?;
            ensure!(run_phase(run) == AnalysisPhase::Successful, "{name}: {:?}", run.status);
            ensure!(step.is_some() || run.spec.terminate, "the background run {name} was not terminated");
        }
        for (kind, cmd) in self.commands {
            let calls = load_tester.calls();
            let matching = calls.iter().filter(|c| c.kind.as_deref() == *kind && c.cmd == *cmd).collect::<Vec<_>>();
            ensure!(!matching.is_empty(), "the load tester never ran {cmd:?}: {calls:?}");
            ensure!(matching.iter().all(|c| c.name == self.name && c.namespace == ns.name), "{matching:?}");
            // A bash command is a one-off acceptance test; the others run at every interval.
            ensure!(kind.is_none() || matching.len() == 1, "{cmd:?} ran {} times", matching.len());
        }
        let routing = (self.routing)();
        ns.wait_traffic(&routing, "all traffic on the new revision", |s| s.all_on(&rev2)).await?;
        let states = watch.finish().await?;
        let canary_served = |s: &TrafficState| {
            s.stable_selects.as_ref() == Some(&rev1)
                && s.canary_selects.as_ref() == Some(&rev2)
                && s.weights.is_none_or(|(_, canary)| canary > 0)
        };
        ensure!(states.iter().any(|(_, s)| canary_served(s)), "the canary never served: {states:#?}");
        Ok(())
    }

    /// Unhealthy traffic: the failing run aborts the update with a message saying why, the
    /// traffic goes back to the stable pods and the canary is scaled down.
    pub async fn aborted_when_unhealthy(&self) -> Result<()> {
        let updated = self.update(false).await?;
        let Updated { ns, watch, rev1, rev2, .. } = updated;
        let aborting = Aborting {
            rollout: self.name,
            routing: (self.routing)(),
            stable: &rev1,
            canary: &rev2,
            step: self.failing_step,
            failed_from: self.failed_from,
            failure: self.failure,
        };
        aborting.rolled_back(&ns).await?;
        watch.finish().await?;
        Ok(())
    }
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn flagger_nginx_example_is_promoted_with_healthy_traffic() -> Result<()> {
    FLAGGER_NGINX.promoted_when_healthy().await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn flagger_nginx_example_is_aborted_with_failing_requests() -> Result<()> {
    FLAGGER_NGINX.aborted_when_unhealthy().await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn apisix_example_is_promoted_with_few_not_found() -> Result<()> {
    APISIX_NOT_FOUND.promoted_when_healthy().await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn apisix_example_is_aborted_with_many_not_found() -> Result<()> {
    APISIX_NOT_FOUND.aborted_when_unhealthy().await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn istio_background_example_is_promoted_with_healthy_traffic() -> Result<()> {
    ISTIO_BACKGROUND.promoted_when_healthy().await
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn istio_background_example_is_aborted_with_failing_requests() -> Result<()> {
    ISTIO_BACKGROUND.aborted_when_unhealthy().await
}
