//! The controller's least privilege: what its roles grant is exactly `rbac/controller-allowed.txt`,
//! and so is the cluster's own answer for its ServiceAccount's token.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::{TestNamespace, User, poll_until, read_repo_file};
use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// One verb on one resource, maybe of one named object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    name: Option<String>,
}

/// The allow-list: what is granted in every namespace, and what only in the controller's own.
fn allowed() -> (BTreeSet<Grant>, BTreeSet<Grant>) {
    let (mut everywhere, mut own) = (BTreeSet::new(), BTreeSet::new());
    for line in read_repo_file("rbac/controller-allowed.txt").lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [where_, group, resource, verbs, rest @ ..] = fields.as_slice() else { continue };
        if where_.starts_with('#') {
            continue;
        }
        let group = if *group == "core" { "" } else { group };
        let target = if *where_ == "own" { &mut own } else { &mut everywhere };
        for verb in verbs.split(',') {
            let name = rest.first().map(|n| n.to_string());
            target.insert(Grant { group: group.into(), resource: resource.to_string(), verb: verb.into(), name });
        }
    }
    (everywhere, own)
}

/// The grants of policy rules (a role's `rules`, or a review's `resourceRules`).
fn grants_of(rules: &Value) -> BTreeSet<Grant> {
    let strings = |value: &Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };
    let mut grants = BTreeSet::new();
    for rule in rules.as_array().into_iter().flatten() {
        let names = strings(&rule["resourceNames"]);
        let names: Vec<Option<String>> =
            if names.is_empty() { vec![None] } else { names.into_iter().map(Some).collect() };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for name in &names {
                        grants.insert(Grant {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
    }
    grants
}

fn documents(path: &str) -> Vec<Value> {
    let documents: Vec<Option<Value>> =
        serde_saphyr::from_multiple(&read_repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    documents.into_iter().flatten().collect()
}

fn rules(documents: &[Value], kind: &str, name: &str) -> BTreeSet<Grant> {
    let role = documents.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name);
    grants_of(&role.unwrap_or_else(|| panic!("no {kind} {name}"))["rules"])
}

#[test]
fn the_roles_grant_exactly_the_allow_list() {
    let (everywhere, own) = allowed();
    assert!(!everywhere.is_empty() && !own.is_empty());
    let cluster = documents("rbac/controller.yaml");
    assert_eq!(rules(&cluster, "ClusterRole", "rollouts-controller"), everywhere);
    assert_eq!(rules(&cluster, "Role", "rollouts-controller-leader"), own);
    let namespaced = documents("rbac/controller-namespaced.yaml");
    let all: BTreeSet<Grant> = everywhere.union(&own).cloned().collect();
    assert_eq!(rules(&namespaced, "Role", "rollouts-controller"), all);
}

const POLICY: &str = "ValidatingAdmissionPolicy";
const BINDING: &str = "ValidatingAdmissionPolicyBinding";

/// Deletes the test's copies of the cluster-scoped objects (those it had).
async fn delete_cluster_scoped(client: &Client, name: &str) -> Result<()> {
    let delete = DeleteParams::default();
    let gone = |result: kube::Result<()>| match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    };
    gone(Api::<ClusterRole>::all(client.clone()).delete(name, &delete).await.map(drop))?;
    gone(Api::<ClusterRoleBinding>::all(client.clone()).delete(name, &delete).await.map(drop))?;
    gone(Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()).delete(name, &delete).await.map(drop))?;
    gone(Api::<ValidatingAdmissionPolicy>::all(client.clone()).delete(name, &delete).await.map(drop))?;
    Ok(())
}

fn pod(name: &str, labels: Value) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    }))?)
}

/// A ReplicaSet like a Rollout's: its one pod is made by the real ReplicaSet controller.
fn replica_set(name: &str) -> Result<ReplicaSet> {
    let labels = json!({"app": name, "rollouts-pod-template-hash": "abc"});
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
        }}
    }))?)
}

/// The controller's token may patch pods, but the admission policy shipped with its role lets it
/// change only the labels and annotations of the pods of a Rollout's ReplicaSets.
async fn pods_stay_as_they_are(ns: &TestNamespace, controller: &Client) -> Result<()> {
    let admin = ns.api::<Pod>();
    ns.api::<ReplicaSet>().create(&PostParams::default(), &replica_set("web-abc")?).await?;
    // Labelled like a Rollout's pod, but no ReplicaSet owns it.
    admin.create(&PostParams::default(), &pod("stray-pod", json!({"rollouts-pod-template-hash": "abc"}))?).await?;
    admin.create(&PostParams::default(), &pod("other-pod", json!({"app": "other"}))?).await?;
    let rollout_pod = poll_until(Duration::from_secs(20), || async {
        let pods = admin.list(&ListParams::default().labels("app=web-abc")).await?;
        Ok(pods.items.first().map(|pod| pod.name_any()))
    })
    .await
    .context("the ReplicaSet made no pod")?;
    let as_controller: Api<Pod> = Api::namespaced(controller.clone(), &ns.name);
    let relabel = |role: &str| Patch::Merge(json!({"metadata": {"labels": {"role": role}}}));
    // The policy applies once the apiserver has loaded it: until then this relabelling succeeds.
    let refused = |result: kube::Result<Pod>| match result {
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => Some(status.message),
        _ => None,
    };
    let message = poll_until(Duration::from_secs(20), || async {
        Ok(refused(as_controller.patch("other-pod", &PatchParams::default(), &relabel("x")).await))
    })
    .await
    .context("the policy never refused relabelling a pod that is not a Rollout's")?;
    ensure!(message.contains("only pods of a Rollout's ReplicaSets"), "{message}");
    let message = refused(as_controller.patch("stray-pod", &PatchParams::default(), &relabel("x")).await)
        .context("the controller's token relabelled a pod no ReplicaSet owns")?;
    ensure!(message.contains("only pods of a Rollout's ReplicaSets"), "{message}");
    as_controller
        .patch(&rollout_pod, &PatchParams::default(), &relabel("canary"))
        .await
        .context("relabelling a Rollout's pod")?;
    let new_image = Patch::Strategic(json!({"spec": {"containers": [{"name": "web", "image": "evil:1"}]}}));
    let message = refused(as_controller.patch(&rollout_pod, &PatchParams::default(), &new_image).await)
        .context("the controller's token changed a pod's image")?;
    ensure!(message.contains("only the labels and annotations"), "{message}");
    Ok(())
}

/// What `client` may do in `namespace`, as the apiserver says.
async fn review(client: &Client, namespace: &str) -> Result<BTreeSet<Grant>> {
    let request = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some(namespace.into()) },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectRulesReview>::all(client.clone()).create(&PostParams::default(), &request).await?;
    let status = answer.status.context("a review without status")?;
    ensure!(!status.incomplete, "the review is incomplete: {:?}", status.evaluation_error);
    Ok(grants_of(&serde_json::to_value(&status.resource_rules)?))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn the_service_account_may_do_exactly_the_allow_list() -> Result<()> {
    let ns = TestNamespace::new("privileges").await?;
    // rbac/controller.yaml with this namespace as the controller's, and cluster-scoped names of
    // its own so tests running at once don't share them.
    let cluster_name = format!("rollouts-controller-{}", ns.name);
    let mut manifest = Vec::new();
    for mut document in documents("rbac/controller.yaml") {
        if document["metadata"]["namespace"].is_string() {
            document["metadata"]["namespace"] = json!(ns.name);
        }
        let cluster_scoped = ["ClusterRole", "ClusterRoleBinding", POLICY, BINDING];
        if cluster_scoped.contains(&document["kind"].as_str().unwrap_or_default()) {
            document["metadata"]["name"] = json!(cluster_name);
        }
        if document["kind"] == "ClusterRoleBinding" {
            document["roleRef"]["name"] = json!(cluster_name);
        }
        if document["kind"] == BINDING {
            document["spec"]["policyName"] = json!(cluster_name);
        }
        for subject in document.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
            subject["namespace"] = json!(ns.name);
        }
        manifest.push(document.to_string());
    }
    ns.apply(&manifest.join("\n---\n")).await?;
    let controller = e2e::client_from(&ns.service_account_kubeconfig("rollouts-controller").await?).await?;
    let nobody = User::Nobody.client().await?;

    let (everywhere, own) = allowed();
    let all: BTreeSet<Grant> = everywhere.union(&own).cloned().collect();
    // What any authenticated user may do is not the role's doing.
    let beyond_anyone = |namespace: String| {
        let (controller, nobody) = (controller.clone(), nobody.clone());
        async move {
            let granted = review(&controller, &namespace).await?;
            let baseline = review(&nobody, &namespace).await?;
            Ok::<_, anyhow::Error>(granted.difference(&baseline).cloned().collect::<BTreeSet<Grant>>())
        }
    };
    // New bindings reach the authorizer within moments.
    let in_own = poll_until(Duration::from_secs(10), || async {
        let granted = beyond_anyone(ns.name.clone()).await?;
        Ok((granted == all).then_some(granted))
    })
    .await;
    let in_own = match in_own {
        Ok(granted) => granted,
        Err(_) => beyond_anyone(ns.name.clone()).await?,
    };
    let elsewhere = beyond_anyone("default".into()).await?;
    let pods = pods_stay_as_they_are(&ns, &controller).await;
    delete_cluster_scoped(&ns.client, &cluster_name).await?;
    pods?;

    let extra: Vec<&Grant> = in_own.difference(&all).collect();
    let missing: Vec<&Grant> = all.difference(&in_own).collect();
    ensure!(
        extra.is_empty() && missing.is_empty(),
        "in its namespace: granted beyond the list {extra:#?}, listed but not granted {missing:#?}"
    );
    let extra: Vec<&Grant> = elsewhere.difference(&everywhere).collect();
    let missing: Vec<&Grant> = everywhere.difference(&elsewhere).collect();
    ensure!(
        extra.is_empty() && missing.is_empty(),
        "in other namespaces: granted beyond the list {extra:#?}, listed but not granted {missing:#?}"
    );
    Ok(())
}
