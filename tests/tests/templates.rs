//! Pod templates as the apiserver stores them: a template read back from a ReplicaSet (what
//! `undo` copies into a Rollout) must hash like the one the ReplicaSet was made from, or undo
//! rolls out a new ReplicaSet instead of re-using the old one.

use anyhow::{Context, Result, ensure};
use e2e::{TestNamespace, read_repo_file};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::PostParams;
use rollouts_controller::api::{POD_TEMPLATE_HASH_LABEL, PodMetadata};
use rollouts_controller::plan::hash::pod_template_hash;
use serde_json::{Value, json};

/// The pod templates of the examples users start from.
fn example_templates() -> Result<Vec<(String, Value)>> {
    let mut templates = Vec::new();
    for file in ["istio-canary", "basic-canary", "automatic-canary", "migrate-from-deployment"] {
        let documents: Vec<Option<Value>> =
            serde_saphyr::from_multiple(&read_repo_file(&format!("examples/{file}.yaml")))?;
        for document in documents.into_iter().flatten() {
            if let Some(template) = document.pointer("/spec/template").filter(|t| t.get("spec").is_some()) {
                templates.push((format!("{file}: {}", document["kind"]), template.clone()));
            }
        }
    }
    Ok(templates)
}

/// A template that uses most of what the apiserver fills defaults into.
fn rich_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "rich"}, "annotations": {"team": "web"}},
        "spec": {
            "serviceAccount": "default",
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
            "containers": [{
                "name": "web", "image": "registry.local:5000/web:1.2",
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}
                ],
                "resources": {"requests": {"cpu": "0.1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "0.5Gi"}},
                "livenessProbe": {"httpGet": {"port": "http"}},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                "startupProbe": {"grpc": {"port": 9090}},
                "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/drain"}}},
                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}, {"name": "conf", "mountPath": "/etc/web"}]
            }],
            "volumes": [
                {"name": "scratch"},
                {"name": "conf", "configMap": {"name": "web"}},
                {"name": "secret", "secret": {"secretName": "web"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "host", "hostPath": {"path": "/var/log"}}
            ]
        }
    })
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn templates_read_back_from_a_replica_set_hash_the_same() -> Result<()> {
    let ns = TestNamespace::new("templates").await?;
    let mut templates = example_templates()?;
    ensure!(templates.len() >= 4, "the examples have templates: {templates:?}");
    templates.push(("a template with probes, volumes and quantities".into(), rich_template()));
    // What canaryMetadata adds to the canary's template, which an undo copies back with the rest.
    let ephemeral: PodMetadata =
        serde_json::from_value(json!({"labels": {"role": "canary"}, "annotations": {"tier": "c"}}))?;
    let mut failures = Vec::new();
    for (index, (what, template)) in templates.into_iter().enumerate() {
        let written: PodTemplateSpec = serde_json::from_value(template.clone())?;
        let mut labelled = template.clone();
        // Odd templates go in as a canary's, with the ephemeral metadata added.
        let with_ephemeral = index % 2 == 1;
        if with_ephemeral {
            labelled["metadata"]["labels"]["role"] = json!("canary");
            labelled["metadata"]["annotations"]["tier"] = json!("c");
        }
        let labels = labelled["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        labelled["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] = json!("x");
        let mut selector = labels.clone();
        selector.insert(POD_TEMPLATE_HASH_LABEL.into(), json!("x"));
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": format!("template-{index}")},
            "spec": {"replicas": 0, "selector": {"matchLabels": selector}, "template": labelled}
        }))?;
        let created = ns.api::<ReplicaSet>().create(&PostParams::default(), &rs).await.with_context(|| what.clone())?;
        let read_back = created.spec.and_then(|s| s.template).context("no template")?;
        let added: &[&PodMetadata] = if with_ephemeral { &[&ephemeral] } else { &[] };
        let (expected, got) = (pod_template_hash(&written, added, None), pod_template_hash(&read_back, added, None));
        if expected != got {
            let diff = (serde_json::to_string(&written)?, serde_json::to_string(&read_back)?);
            failures.push(format!("{what}: written {} vs read back {}", diff.0, diff.1));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
