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
  strategy: {{canary: {{steps: {steps}}}}}
"#
    )
}
