//! The YAML we ship (crds/, rbac/, deploy/, examples/) against a real API server: it applies both
//! client-side and server-side, the CRD validates and prints what users expect, the roles grant
//! exactly what they say, and the controller's Deployment passes the `restricted` Pod Security
//! Standard.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use e2e::{DEFAULT_TIMEOUT, KubectlOutput, TestNamespace, User, kubectl_ok, poll_until, read_repo_file, repo_root};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt, discovery};
use serde_json::{Value, json};

/// Limit for a CRD that plain `kubectl apply` can handle: client-side apply copies the whole
/// object into the last-applied-configuration annotation, and all annotations together must stay
/// under 256 KiB. 64 KiB leaves room and keeps the CRD readable.
const CRD_SIZE_LIMIT: u64 = 64 * 1024;

fn rollouts_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"), "rollouts")
}

fn rollouts_api(client: Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &rollouts_resource())
}

/// The YAML files of a repository directory (e.g. `rbac`), sorted, as repository-relative paths.
/// Kustomizations are left out: they are applied with `-k`, not `-f`.
fn manifest_files(dir: &str) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo_root().join(dir)).with_context(|| format!("listing {dir}/"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if is_yaml && !name.starts_with("kustomization.") {
            files.push(format!("{dir}/{name}"));
        }
    }
    files.sort();
    ensure!(!files.is_empty(), "{dir}/ holds no manifests");
    Ok(files)
}

/// The documents of a YAML file, skipping empty ones.
fn documents(yaml: &str) -> Result<Vec<Value>> {
    let documents: Vec<Option<Value>> = serde_saphyr::from_multiple(yaml)?;
    Ok(documents.into_iter().flatten().filter(|document| !document.is_null()).collect())
}

fn kind_of(document: &Value) -> &str {
    document["kind"].as_str().unwrap_or_default()
}

/// Whether the API server stores `document`'s kind outside namespaces.
async fn is_cluster_scoped(client: &Client, document: &Value) -> Result<bool> {
    let api_version = document["apiVersion"].as_str().context("a document has no apiVersion")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind_of(document));
    let (_, capabilities) = discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("the cluster does not serve {api_version} {}", kind_of(document)))?;
    Ok(capabilities.scope == discovery::Scope::Cluster)
}

/// A manifest file made ready to apply into a test namespace.
struct Manifest {
    /// Repository-relative path.
    path: String,
    /// The file's text, with any hard-coded namespace replaced by the test namespace (the
    /// namespaces our files name, e.g. `rollouts`, don't exist on the test cluster).
    text: String,
    /// Whether `text` differs from the file, so it must be fed on stdin.
    rewritten: bool,
    /// Holds cluster-scoped objects: only server dry runs, so that tests running in parallel
    /// don't fight over them and nothing outlives the test.
    cluster_scoped: bool,
}

impl Manifest {
    async fn load(client: &Client, path: &str, namespace: &str) -> Result<Self> {
        let original = read_repo_file(path);
        let mut text = original.clone();
        let mut cluster_scoped = false;
        for document in documents(&original).with_context(|| format!("parsing {path}"))? {
            cluster_scoped |= is_cluster_scoped(client, &document).await?;
            if let Some(hard_coded) = document["metadata"]["namespace"].as_str() {
                text = replace_namespace_lines(&text, hard_coded, namespace);
            }
        }
        let rewritten = text != original;
        Ok(Manifest { path: path.to_string(), text, rewritten, cluster_scoped })
    }

    /// `kubectl apply` client-side, then `kubectl apply --server-side`, into `namespace`.
    async fn apply_both_ways(&self, namespace: &str) -> Result<()> {
        for server_side in [false, true] {
            let mut args = vec!["apply", "-n", namespace];
            if server_side {
                // The object was just applied client-side (and the installed CRD by up.sh): server-side
                // apply takes over those fields, as a user switching to --server-side does.
                args.extend(["--server-side", "--force-conflicts"]);
            }
            if self.cluster_scoped {
                args.push("--dry-run=server");
            }
            args.extend(["-f", if self.rewritten { "-" } else { &self.path }]);
            let stdin = self.rewritten.then_some(self.text.as_str());
            let mode = if server_side { "server-side" } else { "client-side" };
            let output = kubectl_ok(&args, stdin).await.with_context(|| format!("{mode} apply of {}", self.path))?;
            expect_no_warnings(&output).with_context(|| format!("{mode} apply of {}", self.path))?;
        }
        Ok(())
    }
}

/// Replaces `namespace: <from>` lines (metadata and RBAC subjects alike) with `namespace: <to>`.
fn replace_namespace_lines(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim() == format!("namespace: {from}") {
            out.push_str(&format!("{indent}namespace: {to}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Fails on API warnings (deprecated APIs, unknown fields, PodSecurity), except the one kubectl
/// prints when it takes over an object created without it, which is about the cluster's history.
fn expect_no_warnings(output: &KubectlOutput) -> Result<()> {
    let warnings: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.starts_with("Warning:") && !line.contains("last-applied-configuration"))
        .collect();
    ensure!(warnings.is_empty(), "unexpected warnings:\n{}", warnings.join("\n"));
    Ok(())
}

fn expect_forbidden<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> Result<()> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        other => bail!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[test]
fn crd_is_small_enough_for_client_side_apply() {
    let path = repo_root().join("crds/rollout.yaml");
    let size = std::fs::metadata(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())).len();
    assert!(size < CRD_SIZE_LIMIT, "{} is {size} bytes; keep it under {CRD_SIZE_LIMIT}", path.display());
}

#[test]
fn user_roles_match_their_aggregated_cluster_roles() {
    for name in ["rollouts-reader", "rollouts-writer"] {
        let role = documents(&read_repo_file("rbac/roles.yaml")).unwrap();
        let role = role.iter().find(|d| d["metadata"]["name"] == name).unwrap();
        let cluster_role = documents(&read_repo_file("rbac/aggregated-roles.yaml")).unwrap();
        let cluster_role = cluster_role.iter().find(|d| d["metadata"]["name"] == name).unwrap();
        assert_eq!(role["rules"], cluster_role["rules"], "{name}");
    }
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn crds_apply_client_side_and_server_side() -> Result<()> {
    let ns = TestNamespace::new("manifests-crds").await?;
    for path in manifest_files("crds")? {
        Manifest::load(&ns.client, &path, &ns.name).await?.apply_both_ways(&ns.name).await?;
    }
    // The harness and users apply the whole directory: the kustomization in it (`Kustomization`,
    // for deploy/) must not be taken for a manifest.
    let output = kubectl_ok(&["apply", "--dry-run=server", "-f", "crds/"], None).await?;
    for crd in ["rollouts.argoproj.io", "analysisruns.argoproj.io", "experiments.argoproj.io"] {
        ensure!(output.stdout.contains(crd), "kubectl apply -f crds/ printed:\n{}", output.stdout);
    }
    // `kubectl argo rollouts get` and `status` list AnalysisRuns and Experiments and wait until
    // they can: with only our CRDs installed they must be served.
    let listed = kubectl_ok(&["get", "analysisruns,experiments", "-n", &ns.name], None).await?;
    ensure!(listed.stderr.contains("No resources found"), "kubectl get printed:\n{}{}", listed.stdout, listed.stderr);
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn rbac_files_apply_client_side_and_server_side() -> Result<()> {
    let ns = TestNamespace::new("manifests-rbac-apply").await?;
    let files = manifest_files("rbac")?;
    for expected in ["controller.yaml", "controller-namespaced.yaml", "roles.yaml", "aggregated-roles.yaml"] {
        ensure!(files.contains(&format!("rbac/{expected}")), "rbac/{expected} is missing");
    }
    for path in &files {
        Manifest::load(&ns.client, path, &ns.name).await?.apply_both_ways(&ns.name).await?;
    }
    // Files meant for `kubectl apply -n NS` must not pin a namespace, or -n fails.
    for path in ["rbac/controller-namespaced.yaml", "rbac/roles.yaml", "rbac/example-bindings.yaml"] {
        for document in documents(&read_repo_file(path))? {
            ensure!(
                document["metadata"]["namespace"].is_null(),
                "{path}: {} sets metadata.namespace",
                kind_of(&document)
            );
        }
    }
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn deploy_files_and_kustomization_apply_client_side_and_server_side() -> Result<()> {
    let ns = TestNamespace::new("manifests-deploy").await?;
    for path in manifest_files("deploy")? {
        Manifest::load(&ns.client, &path, &ns.name).await?.apply_both_ways(&ns.name).await?;
    }

    // What `kubectl apply -k deploy/` installs: everything namespaced lands in `rollouts`.
    let built = kubectl_ok(&["kustomize", "deploy/"], None).await?.stdout;
    let mut installed = Vec::new();
    for document in documents(&built)? {
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        if !is_cluster_scoped(&ns.client, &document).await? {
            let namespace = document["metadata"]["namespace"].as_str();
            ensure!(namespace == Some("rollouts"), "{} {name} is in namespace {namespace:?}", kind_of(&document));
        }
        installed.push(format!("{}/{name}", kind_of(&document)));
    }
    for expected in [
        "Namespace/rollouts",
        "CustomResourceDefinition/rollouts.argoproj.io",
        "ServiceAccount/rollouts-controller",
        "ClusterRole/rollouts-controller",
        "ClusterRoleBinding/rollouts-controller",
        "ClusterRole/rollouts-reader",
        "ClusterRole/rollouts-writer",
        "Deployment/rollouts-controller",
        "Service/rollouts-controller-metrics",
    ] {
        ensure!(
            installed.iter().any(|object| object == expected),
            "kubectl kustomize deploy/ lacks {expected}: {installed:?}"
        );
    }

    // `kubectl apply -k` of deploy/, through an overlay that only moves it into the test namespace
    // (namespace `rollouts` does not exist on the test cluster, and a dry run can't create it).
    // kustomize needs the overlay to reach deploy/ by a relative path.
    let overlay = repo_root().join("target/e2e-kustomize").join(&ns.name);
    std::fs::create_dir_all(&overlay)?;
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!("namespace: {}\nresources:\n  - ../../../deploy\n", ns.name),
    )?;
    let overlay_arg = overlay.to_string_lossy().into_owned();
    let result = async {
        for extra in [&[][..], &["--server-side", "--force-conflicts"][..]] {
            let mut args = vec!["apply", "--dry-run=server", "-k", &overlay_arg];
            args.extend(extra);
            let output = kubectl_ok(&args, None).await?;
            expect_no_warnings(&output)?;
            ensure!(
                output.stdout.contains("deployment.apps/rollouts-controller"),
                "kubectl {} printed:\n{}",
                args.join(" "),
                output.stdout
            );
        }
        anyhow::Ok(())
    }
    .await;
    std::fs::remove_dir_all(&overlay).ok();
    // Left only if empty: other tests may have overlays there.
    overlay.parent().map(std::fs::remove_dir);
    result
}

/// The canary steps `examples/istio-canary.yaml` must keep (and the server must not prune).
fn istio_example_steps() -> Value {
    json!([
        {"setCanaryScale": {"replicas": 2}},
        {"pause": {}},
        {"setCanaryScale": {"matchTrafficWeight": true}},
        {"setWeight": 1},
        {"pause": {}},
        {"setWeight": 10},
        {"pause": {}},
        {"setWeight": 30},
        {"setWeight": 50},
        {"pause": {}},
        {"setWeight": 70},
        {"setWeight": 90},
        {"setWeight": 100},
        {"pause": {"duration": "15s"}},
    ])
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn examples_apply_client_side_and_server_side() -> Result<()> {
    let ns = TestNamespace::new("manifests-examples").await?;
    let files = manifest_files("examples")?;
    for expected in ["istio-canary.yaml", "automatic-canary.yaml", "basic-canary.yaml", "migrate-from-deployment.yaml"]
    {
        ensure!(files.contains(&format!("examples/{expected}")), "examples/{expected} is missing");
    }
    for path in &files {
        // Examples go into whatever namespace the user picks.
        for document in documents(&read_repo_file(path))? {
            ensure!(
                document["metadata"]["namespace"].is_null(),
                "{path}: {} sets metadata.namespace",
                kind_of(&document)
            );
            ensure!(
                !is_cluster_scoped(&ns.client, &document).await?,
                "{path}: {} is cluster-scoped",
                kind_of(&document)
            );
        }
        let manifest = Manifest::load(&ns.client, path, &ns.name).await?;
        manifest.apply_both_ways(&ns.name).await?;
    }

    let rollouts = rollouts_api(ns.client.clone(), &ns.name);
    let mut names: Vec<String> =
        rollouts.list(&ListParams::default()).await?.items.iter().map(|r| r.name_any()).collect();
    names.sort();
    assert_eq!(names, ["auto-demo", "basic-demo", "istio-demo", "web"]);

    let istio = rollouts.get("istio-demo").await?;
    assert_eq!(istio.data["spec"]["strategy"]["canary"]["steps"], istio_example_steps());
    assert_eq!(
        istio.data["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]["virtualService"],
        json!({"name": "istio-demo", "routes": ["primary"]})
    );
    assert_eq!(rollouts.get("web").await?.data["spec"]["paused"], json!(true), "the migration starts paused");
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn kubectl_get_shows_printer_columns_and_scale_sets_replicas() -> Result<()> {
    let ns = TestNamespace::new("manifests-kubectl").await?;
    kubectl_ok(&["apply", "-n", &ns.name, "-f", "examples/basic-canary.yaml"], None).await?;

    let table = kubectl_ok(&["get", "ro", "-n", &ns.name], None).await?.stdout;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    // Argo Rollouts' columns first, in its order, and AGE last; PHASE and STEP are ours.
    assert_eq!(header[..5], ["NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE"], "{table}");
    assert_eq!(header.last(), Some(&"AGE"), "{table}");
    assert!(header.contains(&"PHASE") && header.contains(&"STEP"), "{table}");
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..2], ["basic-demo", "4"], "{table}");

    // Through the scale subresource, as an HPA does.
    kubectl_ok(&["scale", "-n", &ns.name, "rollout/basic-demo", "--replicas", "5"], None).await?;
    let rollout = rollouts_api(ns.client.clone(), &ns.name).get("basic-demo").await?;
    assert_eq!(rollout.data["spec"]["replicas"], json!(5));
    Ok(())
}

/// A Rollout the CRD accepts, the base of the invalid ones.
fn valid_rollout(name: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "valid"}},
            "template": {
                "metadata": {"labels": {"app": "valid"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            },
            "strategy": {"canary": {"steps": [
                {"setWeight": 20},
                {"pause": {"duration": "10s"}},
                {"pause": {}}
            ]}}
        }
    })
}

fn valid_workload_ref_rollout(name: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "progressively"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}
        }
    })
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn crd_rejects_invalid_rollouts_naming_the_field() -> Result<()> {
    let ns = TestNamespace::new("manifests-validation").await?;
    let api = rollouts_api(ns.client.clone(), &ns.name);
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    let create = |rollout: Value| {
        let api = api.clone();
        let dry_run = dry_run.clone();
        async move {
            api.create(&dry_run, &serde_json::from_value::<DynamicObject>(rollout)?).await.map_err(anyhow::Error::from)
        }
    };

    // The bases are valid, so each rejection below is due to its one change.
    create(valid_rollout("valid")).await.context("the valid inline Rollout")?;
    create(valid_workload_ref_rollout("valid-ref")).await.context("the valid workloadRef Rollout")?;

    let mut set_weight = valid_rollout("set-weight");
    set_weight["spec"]["strategy"]["canary"]["steps"][0] = json!({"setWeight": 150});
    let mut two_actions = valid_rollout("two-actions");
    two_actions["spec"]["strategy"]["canary"]["steps"][0] = json!({"setWeight": 10, "pause": {}});
    let mut scale_down = valid_workload_ref_rollout("scale-down");
    scale_down["spec"]["workloadRef"]["scaleDown"] = json!("sometimes");
    let mut replicas = valid_rollout("replicas");
    replicas["spec"]["replicas"] = json!(-1);
    let mut duration = valid_rollout("duration");
    duration["spec"]["strategy"]["canary"]["steps"][1] = json!({"pause": {"duration": "10x"}});
    let mut endless = valid_rollout("endless");
    endless["spec"]["strategy"]["canary"]["steps"][1] = json!({"pause": {"duration": "9999999999h"}});
    let mut endless_seconds = valid_rollout("endless-seconds");
    endless_seconds["spec"]["strategy"]["canary"]["steps"][1] = json!({"pause": {"duration": 2_000_000_000}});

    let mut failures = Vec::new();
    for (what, rollout, field) in [
        ("setWeight 150", set_weight, "setWeight"),
        ("a step with setWeight and pause", two_actions, "steps"),
        ("scaleDown: sometimes", scale_down, "scaleDown"),
        ("replicas -1", replicas, "replicas"),
        ("pause duration 10x", duration, "duration"),
        ("pause duration 9999999999h", endless, "duration"),
        ("pause duration 2000000000 s", endless_seconds, "duration"),
    ] {
        match create(rollout).await {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(error) => match error.downcast_ref::<kube::Error>() {
                Some(kube::Error::Api(status)) if status.code == 422 && status.message.contains(field) => {
                    eprintln!("{what}: rejected: {}", status.message);
                }
                _ => failures.push(format!("{what}: expected 422 naming `{field}`, got {error:#}")),
            },
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn reader_and_writer_roles_grant_exactly_their_verbs() -> Result<()> {
    let ns = TestNamespace::new("manifests-rbac").await?;
    kubectl_ok(&["apply", "-n", &ns.name, "-f", "rbac/roles.yaml", "-f", "rbac/example-bindings.yaml"], None).await?;
    kubectl_ok(&["apply", "-n", &ns.name, "-f", "examples/basic-canary.yaml"], None).await?;
    let name = "basic-demo";
    let annotate = |by: &str| Patch::Merge(json!({"metadata": {"annotations": {"e2e/patched-by": by}}}));

    let reader = rollouts_api(User::Reader.client().await?, &ns.name);
    // New bindings reach the authorizer's cache within moments.
    poll_until(Duration::from_secs(10), || async { Ok(reader.get_opt(name).await?) })
        .await
        .context("the reader can't get the rollout")?;
    let listed = reader.list(&ListParams::default()).await?;
    assert_eq!(listed.items.iter().map(|r| r.name_any()).collect::<Vec<_>>(), [name]);
    // `kubectl argo rollouts get` also lists these, and waits until it can.
    for kind in ["AnalysisRun", "Experiment"] {
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(User::Reader.client().await?, &ns.name, &ApiResource::from_gvk(&gvk));
        api.list(&ListParams::default()).await.with_context(|| format!("the reader can't list {kind}s"))?;
    }
    reader.get_status(name).await.context("the reader can't get rollouts/status")?;
    let mut events = reader.watch(&WatchParams::default().timeout(5), "0").await?.boxed();
    match tokio::time::timeout(Duration::from_secs(10), events.next()).await? {
        Some(Ok(WatchEvent::Added(rollout))) => assert_eq!(rollout.name_any(), name),
        other => bail!("the reader's watch: expected the rollout to be added, got {other:?}"),
    }
    expect_forbidden(
        "reader patches the rollout",
        reader.patch(name, &PatchParams::default(), &annotate("reader")).await,
    )?;
    expect_forbidden(
        "reader patches rollouts/status",
        reader
            .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"message": "reader"}})))
            .await,
    )?;

    let writer_client = User::Writer.client().await?;
    let writer = rollouts_api(writer_client.clone(), &ns.name);
    poll_until(Duration::from_secs(10), || async {
        Ok(writer.patch(name, &PatchParams::default(), &annotate("writer")).await.ok())
    })
    .await
    .context("the writer can't patch the rollout")?;
    writer.get(name).await?;
    writer.list(&ListParams::default()).await?;
    writer
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"paused": true}})))
        .await
        .context("the writer can't pause the rollout")?;
    writer
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"message": "patched by the writer"}})),
        )
        .await
        .context("the writer can't patch rollouts/status")?;
    expect_forbidden("writer deletes the rollout", writer.delete(name, &DeleteParams::default()).await)?;
    let writer_replica_sets: Api<ReplicaSet> = Api::namespaced(writer_client, &ns.name);
    expect_forbidden("writer lists replicasets", writer_replica_sets.list(&ListParams::default()).await)?;
    expect_forbidden("writer gets a replicaset", writer_replica_sets.get("basic-demo-1").await)?;
    expect_forbidden(
        "writer patches a replicaset",
        writer_replica_sets
            .patch("basic-demo-1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 0}})))
            .await,
    )?;

    // The rollout is still there, and the writer's patches landed.
    let rollout = rollouts_api(ns.client.clone(), &ns.name).get(name).await?;
    assert_eq!(rollout.annotations().get("e2e/patched-by").map(String::as_str), Some("writer"));
    assert_eq!(rollout.data["spec"]["paused"], json!(true));
    Ok(())
}

/// The documents of `path` whose kind is in `kinds`, moved into `namespace`, as one `v1 List`.
fn documents_in_namespace(path: &str, kinds: &[&str], namespace: &str) -> Result<Value> {
    let mut items = Vec::new();
    for mut document in documents(&read_repo_file(path))? {
        if kinds.contains(&kind_of(&document)) {
            document["metadata"]["namespace"] = json!(namespace);
            items.push(document);
        }
    }
    ensure!(!items.is_empty(), "{path} has none of {kinds:?}");
    Ok(json!({"apiVersion": "v1", "kind": "List", "items": items}))
}

#[tokio::test]
#[ignore = "e2e: needs the test cluster (make test)"]
async fn controller_deployment_passes_the_restricted_pod_security_standard() -> Result<()> {
    const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
    // deploy/ enforces `restricted` on the controller's namespace; so does this test's namespace.
    let namespace = documents(&read_repo_file("deploy/namespace.yaml"))?;
    assert_eq!(namespace[0]["metadata"]["labels"][ENFORCE], json!("restricted"));
    let ns = TestNamespace::with_labels("manifests-psa", &[(ENFORCE, "restricted")]).await?;

    // The controller's ServiceAccount and Deployment, as deploy/ installs them, but in this namespace.
    let service_account = documents_in_namespace("rbac/controller.yaml", &["ServiceAccount"], &ns.name)?;
    let deployment = documents_in_namespace("deploy/controller.yaml", &["Deployment"], &ns.name)?;
    for list in [&service_account, &deployment] {
        let output = kubectl_ok(&["apply", "-n", &ns.name, "-f", "-"], Some(&list.to_string())).await?;
        ensure!(!output.stderr.contains("PodSecurity"), "PodSecurity warns about the controller:\n{}", output.stderr);
        expect_no_warnings(&output)?;
    }

    // Admission of the pods themselves: the ReplicaSet controller creates them only if they pass.
    let pods = ns.api::<Pod>();
    let selector = ListParams::default().labels("app.kubernetes.io/name=rollouts-controller");
    if let Err(error) = poll_until(DEFAULT_TIMEOUT, || async {
        Ok(pods.list(&selector).await?.items.first().map(|pod| pod.name_any()))
    })
    .await
    {
        bail!("no controller pod was admitted ({error}):\n{}", ns.describe().await);
    }

    // The same pod spec, checked directly by admission (a dry run still runs PodSecurity).
    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
    let template = ns.api::<Deployment>().get("rollouts-controller").await?.spec.context("no spec")?.template;
    let pod = Pod {
        metadata: kube::api::ObjectMeta { name: Some("controller".into()), ..Default::default() },
        spec: template.spec,
        ..Default::default()
    };
    pods.create(&dry_run, &pod).await.context("the controller's pod spec is not admitted")?;

    // And the namespace does enforce: an ordinary pod without a security context is rejected.
    let careless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "careless"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    }))?;
    match pods.create(&dry_run, &careless).await {
        Err(kube::Error::Api(status)) if status.code == 403 && status.message.contains("violates PodSecurity") => {
            Ok(())
        }
        other => bail!("a non-compliant pod was not rejected by PodSecurity: {other:?}"),
    }
}
