//! Manifests the tests share.

/// A Deployment `name` of `replicas` pods labelled `app: <name>`, with one container `name`.
pub fn deployment(name: &str, replicas: i32, image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: "{image}"}}]
"#
    )
}

/// A Rollout `name` with an inline template like `deployment`'s and the canary `steps` (a YAML
/// flow list such as `[{setWeight: 50}, {pause: {}}]`).
pub fn inline_rollout(name: &str, replicas: i32, image: &str, steps: &str) -> String {
    rollout_with_canary(name, replicas, image, &format!("steps: {steps}"))
}

/// `inline_rollout` with `canary` the entries of its canary strategy.
fn rollout_with_canary(name: &str, replicas: i32, image: &str, canary: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: "{image}"}}]
  strategy: {{canary: {{{canary}}}}}
"#
    )
}

/// A Gateway API route `name` of `kind` (`HTTPRoute` or `GRPCRoute`) whose first rule splits
/// between `<name>-stable` (100) and `<name>-canary` (0) beside a foreign backendRef, then a
/// foreign rule.
pub fn gateway_api_route(kind: &str, name: &str) -> String {
    let (split, foreign) = match kind {
        "GRPCRoute" => ("{method: {service: shop.Cart}}", "{method: {service: admin.Admin}}"),
        _ => ("{path: {type: PathPrefix, value: /}}", "{path: {type: PathPrefix, value: /admin}}"),
    };
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gateway}}]
  rules:
  - matches: [{split}]
    backendRefs:
    - {{name: {name}-stable, port: 80, weight: 100}}
    - {{name: {name}-canary, port: 80, weight: 0}}
    - {{name: legacy, port: 80, weight: 0}}
  - matches: [{foreign}]
    backendRefs: [{{name: admin, port: 80}}]
"#
    )
}

/// The Services `<name>-stable` and `<name>-canary` and a Rollout `name` like `inline_rollout`'s
/// (2 pods) routed through the Gateway API route `name` of `kind`, as users of Argo's plugin
/// write it; `extra` adds entries to `trafficRouting` (e.g. `, managedRoutes: [...]`).
pub fn gateway_api_canary(kind: &str, name: &str, steps: &str, extra: &str) -> String {
    let key = if kind == "GRPCRoute" { "grpcRoute" } else { "httpRoute" };
    let service = |role: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}-{role}}}\nspec: {{selector: {{app: {name}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n"
        )
    };
    let canary = format!(
        "stableService: {name}-stable, canaryService: {name}-canary, steps: {steps}, trafficRouting: {{plugins: {{argoproj-labs/gatewayAPI: {{{key}: {name}}}}}{extra}}}"
    );
    let rollout = rollout_with_canary(name, 2, "nginx:1.26", &canary);
    format!("\n{}---\n{}---{rollout}", service("stable"), service("canary"))
}
