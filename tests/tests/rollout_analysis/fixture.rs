//! A small traffic-routed Rollout for the behaviour tests: `web` (two pods, an inline template)
//! behind Services `web-stable` / `web-canary` and VirtualService `web`, with fast
//! AnalysisTemplates that read one gauge from the test's own Prometheus.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::TestNamespace;
use e2e::controller::RunningController;
use e2e::prometheus::Prometheus;
use e2e::rollouts::status;
use e2e::traffic::Routing;

pub const APP: &str = "web";
/// The gauge every template reads, and values that pass, fail and are neither.
pub const SUCCESS_RATE: &str = r#"success_rate{service="web-canary"}"#;
pub const GOOD: f64 = 1.0;
pub const BAD: f64 = 0.5;
pub const INCONCLUSIVE: f64 = 0.95;
/// The templates' measurement interval.
pub const INTERVAL: Duration = Duration::from_secs(2);
pub const SUCCESS_CONDITION: &str = "result[0] >= 0.99";
pub const FAILURE_CONDITION: &str = "result[0] < 0.9";

pub fn routing() -> Routing {
    Routing::services("web-stable", "web-canary").through("VirtualService", "web")
}

/// An analysis step (YAML flow) running `template` on the canary.
pub fn analysis_step(template: &str) -> String {
    format!("{{analysis: {{templates: [{{templateName: {template}}}], args: {ARGS}}}}}")
}

/// Background analysis (the YAML of `canary.analysis`) running `watch` from `starting_step`.
pub fn background(starting_step: u32) -> String {
    format!("analysis: {{templates: [{{templateName: watch}}], startingStep: {starting_step}, args: {ARGS}}}")
}

/// What the Rollout gives its templates: the canary Service by value, the canary's hash.
const ARGS: &str = "[{name: service, value: web-canary}, {name: hash, valueFrom: {podTemplateHashValue: Latest}}]";

/// The templates, by count: `gate` (two measurements, the second failure fails it), `five`,
/// `long` (for runs that stay Running) and `watch` (until terminated, for background runs).
fn templates(address: &str) -> String {
    [("gate", "count: 2"), ("five", "count: 5"), ("long", "count: 1000"), ("watch", "")]
        .iter()
        .map(|(name, count)| {
            format!(
                r#"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args: [{{name: service}}, {{name: hash}}]
  metrics:
  - name: success-rate
    interval: {interval}s
    {count}
    failureLimit: 1
    successCondition: "{SUCCESS_CONDITION}"
    failureCondition: "{FAILURE_CONDITION}"
    provider:
      prometheus:
        address: "{address}"
        query: 'success_rate{{service="{{{{args.service}}}}"}}'
"#,
                interval = INTERVAL.as_secs()
            )
        })
        .collect()
}

fn manifests(address: &str, steps: &str, background: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: web-stable}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-canary}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: [web]
  http:
  - name: primary
    route:
    - {{destination: {{host: web-stable}}, weight: 100}}
    - {{destination: {{host: web-canary}}, weight: 0}}
{templates}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "nginx:1.26"}}]
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      abortScaleDownDelaySeconds: 2
      trafficRouting: {{istio: {{virtualService: {{name: web, routes: [primary]}}}}}}
      steps: {steps}
      {background}
"#,
        templates = templates(address)
    )
}

/// The Rollout Healthy at revision 1, its controller running, the gauge at `rate`.
pub struct Fixture {
    pub ns: TestNamespace,
    pub prometheus: Prometheus,
    pub controller: Option<RunningController>,
    pub rev1: String,
}

impl Fixture {
    /// `steps` is a YAML flow list; `background` the YAML of `canary.analysis`, or empty.
    pub async fn healthy(test: &str, steps: &str, background: &str, rate: f64) -> Result<Fixture> {
        let ns = TestNamespace::new(test).await?;
        let prometheus = Prometheus::start().await?;
        prometheus.set(SUCCESS_RATE, rate).await?;
        let controller = Some(ns.start_controller().await?);
        ns.apply(&manifests(&prometheus.url(), steps, background)).await?;
        let rev1 = status(&ns.wait_phase(APP, "Healthy").await?).stable_rs.context("no stable hash")?;
        Ok(Fixture { ns, prometheus, controller, rev1 })
    }

    /// Changes the pod template to `image`; returns the new revision's hash once the Rollout
    /// has it.
    pub async fn update(&self, image: &str) -> Result<String> {
        let before = status(&self.ns.rollout(APP).await?).current_pod_hash;
        self.ns.set_rollout_image(APP, APP, image).await?;
        let updated = self
            .ns
            .wait_rollout(APP, "a new revision", |r| {
                status(r).current_pod_hash.is_some() && status(r).current_pod_hash != before
            })
            .await?;
        Ok(status(&updated).current_pod_hash.unwrap_or_default())
    }

    /// Starts the controller again after [`Fixture::stop`] or a crash.
    pub async fn start(&mut self) -> Result<()> {
        self.controller = Some(self.ns.start_controller().await?);
        Ok(())
    }

    /// Stops the controller as SIGTERM does.
    pub async fn stop(&mut self) -> Result<()> {
        match self.controller.take() {
            Some(controller) => controller.stop().await,
            None => Ok(()),
        }
    }

    /// Kills the controller where it is, as a crash does.
    pub fn crash(&mut self) {
        drop(self.controller.take());
    }
}
