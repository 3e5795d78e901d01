//! `Sim`: a tiny cluster that applies each plan's writes to an `Observed`, as the apiserver,
//! the ReplicaSet controller and kubelets would.

use super::*;

/// A tiny cluster: applies a plan's writes to `Observed`. Pods become available at once when
/// `ready` is set, like kwok's fake kubelet.
pub(super) struct Sim {
    pub observed: Observed,
    pub ready: bool,
    pub plans: Vec<Plan>,
    /// Recorded pod templates (ControllerRevisions), by name.
    pub records: BTreeMap<String, RecordedTemplate>,
    /// Hashes whose pods never become available.
    pub failing: Vec<String>,
}

impl Sim {
    pub fn new(observed: Observed) -> Self {
        Sim { observed, ready: true, plans: Vec::new(), records: BTreeMap::new(), failing: Vec::new() }
    }

    pub fn status(&self) -> RolloutStatus {
        self.observed.rollout.status.clone().unwrap_or_default()
    }

    /// Plans once, applies it, and lets the ReplicaSets catch up.
    pub fn step(&mut self) -> Plan {
        self.catch_up();
        let plan = plan(&self.observed);
        self.apply(&plan);
        self.plans.push(plan.clone());
        plan
    }

    /// Reconciles until a plan would change nothing (or gives up after 60 rounds).
    pub fn settle(&mut self) {
        for _ in 0..60 {
            self.catch_up();
            let plan = plan(&self.observed);
            if plan.actions.is_empty() && plan.status == self.status() {
                return;
            }
            self.apply(&plan);
            self.plans.push(plan);
        }
        panic!("no fixed point after 60 reconciles; last status: {:#?}", self.status());
    }

    /// Moves the clock forward and settles.
    pub fn wait(&mut self, seconds: i64) {
        self.observed.now += SignedDuration::from_secs(seconds);
        self.settle();
    }

    /// Lets `seconds` pass a second at a time, settling after each.
    pub fn run_for(&mut self, seconds: i64) {
        for _ in 0..seconds {
            self.wait(1);
        }
    }

    pub fn rs(&self, hash: &str) -> Option<&ReplicaSetView> {
        self.observed.replica_sets.iter().find(|rs| rs.hash == hash)
    }

    pub fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            self.apply_action(action);
        }
        self.observed.rollout.status = Some(plan.status.clone());
        self.catch_up();
    }

    /// One write, as the apiserver would take it.
    pub fn apply_action(&mut self, action: &Action) {
        let now = self.observed.now;
        match action {
            Action::CreateReplicaSet(rs) | Action::RecreateReplicaSet(rs) => {
                let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH_LABEL].clone();
                let annotations = rs.metadata.annotations.clone().unwrap_or_default();
                let injected = annotations.get(EPHEMERAL_METADATA_ANNOTATION).map(|r| metadata::parse_record(r));
                self.observed.replica_sets.push(ReplicaSetView {
                    name: rs.metadata.name.clone().unwrap(),
                    hash,
                    owned: true,
                    revision: annotations.get(REVISION_ANNOTATION).and_then(|r| r.parse().ok()),
                    spec_replicas: rs.spec.as_ref().unwrap().replicas.unwrap(),
                    desired_replicas_annotation: annotations
                        .get(DESIRED_REPLICAS_ANNOTATION)
                        .and_then(|r| r.parse().ok()),
                    created: Some(now),
                    status_current: true,
                    injected: injected.unwrap_or_default(),
                    ..Default::default()
                });
            }
            Action::PatchReplicaSet { name, replicas, annotations } => {
                let rs = self.observed.replica_sets.iter_mut().find(|rs| &rs.name == name).expect("patched RS exists");
                if let Some(replicas) = replicas {
                    assert!(*replicas >= 0, "negative replicas for {name}");
                    rs.spec_replicas = *replicas;
                }
                for (key, value) in annotations {
                    match key.as_str() {
                        DESIRED_REPLICAS_ANNOTATION => {
                            rs.desired_replicas_annotation = value.as_ref().map(|v| v.parse().unwrap())
                        }
                        SCALE_DOWN_DEADLINE_ANNOTATION => {
                            rs.scale_down_deadline = value.as_ref().map(|v| v.parse().unwrap())
                        }
                        REVISION_ANNOTATION => rs.revision = value.as_ref().map(|v| v.parse().unwrap()),
                        REVISION_HISTORY_ANNOTATION => rs.revision_history = value.clone(),
                        EPHEMERAL_METADATA_ANNOTATION => {
                            rs.injected = value.as_deref().map(metadata::parse_record).unwrap_or_default()
                        }
                        _ => {}
                    }
                }
            }
            Action::DeleteReplicaSet { name } => self.observed.replica_sets.retain(|rs| &rs.name != name),
            Action::SetServiceSelector { service, hash, changed_at } => {
                let rollout = self.observed.rollout.metadata.name.clone();
                let svc = self.observed.services.get_mut(service).expect("service exists");
                match hash {
                    Some(hash) => {
                        svc.selector.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
                        svc.managed_by = rollout;
                        svc.traffic_changed_at = Some(*changed_at);
                    }
                    None => {
                        svc.selector.remove(POD_TEMPLATE_HASH_LABEL);
                        svc.managed_by = None;
                        svc.traffic_changed_at = None;
                    }
                }
            }
            Action::SetVirtualServiceWeights { namespace, name, patch, .. }
            | Action::PatchVirtualService { namespace, name, patch } => {
                let vs = self
                    .observed
                    .virtual_services
                    .as_mut()
                    .unwrap()
                    .get_mut(&(namespace.clone(), name.clone()))
                    .unwrap();
                let mut object = json!({"metadata": {"resourceVersion": vs.resource_version}, "spec": vs.spec});
                if vs.annotated {
                    let changed_at = vs.traffic_changed_at.map(|t| t.to_string());
                    object["metadata"]["annotations"] = json!({TRAFFIC_CHANGED_ANNOTATION: changed_at});
                }
                let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(patch.clone())).unwrap();
                json_patch::patch(&mut object, &patch).expect("weight patch applies");
                vs.spec = object["spec"].clone();
                let changed_at = &object["metadata"]["annotations"][TRAFFIC_CHANGED_ANNOTATION];
                vs.traffic_changed_at = changed_at.as_str().map(|t| t.parse().unwrap());
                vs.annotated = true;
                let version: u64 = vs.resource_version.as_deref().unwrap_or("0").parse().unwrap();
                vs.resource_version = Some((version + 1).to_string());
            }
            Action::ScaleWorkload { replicas, .. } => {
                let workload = self.observed.workload.as_mut().expect("workload exists");
                workload.deployment_replicas = Some(*replicas);
                workload.deployment_available = *replicas;
            }
            Action::AddFinalizer => {
                self.observed.rollout.metadata.finalizers.get_or_insert_with(Vec::new).push(FINALIZER.into())
            }
            Action::RemoveFinalizer => self.observed.rollout.metadata.finalizers = None,
            Action::DefaultReplicas => self.observed.rollout.spec.replicas = Some(1),
            Action::AdoptReplicaSet { name } => {
                self.observed.replica_sets.iter_mut().filter(|rs| &rs.name == name).for_each(|rs| rs.owned = true)
            }
            Action::AnnotateRollout { annotations } => {
                let current = self.observed.rollout.metadata.annotations.get_or_insert_with(BTreeMap::new);
                for (key, value) in annotations {
                    match value {
                        Some(value) => current.insert(key.clone(), value.clone()),
                        None => current.remove(key),
                    };
                }
            }
            Action::RecordTemplate(record) => {
                let template = serde_json::from_value(record.data.clone().unwrap().0).unwrap();
                let revision = u64::try_from(record.revision).unwrap();
                self.records.insert(record.metadata.name.clone().unwrap(), RecordedTemplate { template, revision });
            }
            Action::DeleteTemplateRecord { name } => {
                self.records.remove(name);
            }
            Action::EvictPod { .. } | Action::SetTemplateMetadata { .. } | Action::SetPodMetadata { .. } => {}
            Action::CreateIngress(ingress) => {
                let name = ingress.metadata.name.clone().unwrap();
                assert!(!self.observed.ingresses.contains_key(&name), "created {name} twice");
                self.observed.ingresses.insert(name, (**ingress).clone());
            }
            Action::PatchIngress { name, patch, .. } => {
                let ingress = self.observed.ingresses.get_mut(name).expect("patched Ingress exists");
                let mut json = serde_json::to_value(&*ingress).unwrap();
                json_patch::merge(&mut json, patch);
                *ingress = serde_json::from_value(json).unwrap();
            }
            Action::PatchRoute { kind, namespace, name, patch, .. } => {
                let objects = self.observed.route_objects.get_mut(kind).and_then(Option::as_mut).expect("kind served");
                let object = objects.get_mut(&(namespace.clone(), name.clone())).expect("patched route exists");
                let mut json = serde_json::to_value(&*object).unwrap();
                let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(patch.clone())).unwrap();
                json_patch::patch(&mut json, &patch).expect("route patch applies");
                let version: u64 = json["metadata"]["resourceVersion"].as_str().unwrap_or("0").parse().unwrap();
                json["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                *object = serde_json::from_value(json).unwrap();
            }
            Action::CreateRoute { kind, object } => {
                let objects = self.observed.route_objects.get_mut(kind).and_then(Option::as_mut).expect("kind served");
                let key = (object.metadata.namespace.clone().unwrap(), object.metadata.name.clone().unwrap());
                assert!(!objects.contains_key(&key), "created {key:?} twice");
                let mut created = (**object).clone();
                created.metadata.uid = Some(format!("uid-{}", key.1));
                created.metadata.resource_version = Some("1".into());
                objects.insert(key, created);
            }
            Action::DeleteRoute { kind, namespace, name, .. } => {
                let objects = self.observed.route_objects.get_mut(kind).and_then(Option::as_mut).expect("kind served");
                objects.remove(&(namespace.clone(), name.clone()));
            }
            Action::CreateAnalysisRun(run) => {
                let name = run.metadata.name.as_deref();
                if !self.observed.analysis_runs.iter().any(|r| r.metadata.name.as_deref() == name) {
                    let mut created = (**run).clone();
                    created.metadata.creation_timestamp = Some(Time(now));
                    self.observed.analysis_runs.push(created);
                }
            }
            Action::TerminateAnalysisRun { name } => {
                let run = self.analysis_run_mut(name).expect("terminated run exists");
                run.spec.terminate = true;
            }
            Action::DeleteAnalysisRun { name } => {
                self.observed.analysis_runs.retain(|r| r.metadata.name.as_deref() != Some(name));
            }
        }
    }

    pub fn analysis_run_mut(&mut self, name: &str) -> Option<&mut AnalysisRun> {
        self.observed.analysis_runs.iter_mut().find(|r| r.metadata.name.as_deref() == Some(name))
    }

    /// The ReplicaSet controller and kubelets do their part; `observe` reads the stable's record
    /// when its ReplicaSet is gone.
    pub fn catch_up(&mut self) {
        let stable = self.status().stable_rs.filter(|h| self.rs(h).is_none());
        self.observed.stable_template = stable.and_then(|h| self.records.get(&format!("web-{h}")).cloned());
        for rs in &mut self.observed.replica_sets {
            rs.status_replicas = rs.spec_replicas;
            if self.failing.contains(&rs.hash) {
                rs.available = 0;
                rs.ready = 0;
            } else if self.ready {
                rs.available = rs.spec_replicas;
                rs.ready = rs.spec_replicas;
            } else {
                rs.available = rs.available.min(rs.spec_replicas);
                rs.ready = rs.ready.min(rs.spec_replicas);
            }
        }
    }

    pub fn update_template(&mut self, image: &str) {
        self.observed.rollout.spec.template = Some(Box::new(template(image)));
        self.observed.rollout.metadata.generation = self.observed.rollout.metadata.generation.map(|g| g + 1);
    }

    pub fn set_status(&mut self, edit: impl FnOnce(&mut RolloutStatus)) {
        let mut status = self.status();
        edit(&mut status);
        self.observed.rollout.status = Some(status);
    }

    pub fn vs_weights(&self) -> (i64, i64) {
        let vs = &self.observed.virtual_services.as_ref().unwrap()[&(NAMESPACE.to_string(), "web".to_string())];
        let route = &vs.spec["http"][0]["route"];
        (route[0]["weight"].as_i64().unwrap(), route[1]["weight"].as_i64().unwrap())
    }

    /// Someone else's edit of the VirtualService's weights.
    pub fn edit_vs_weights(&mut self, stable: i64, canary: i64) {
        let vs = self.observed.virtual_services.as_mut().unwrap();
        let route = &mut vs.get_mut(&(NAMESPACE.to_string(), "web".to_string())).unwrap().spec["http"][0]["route"];
        route[0]["weight"] = json!(stable);
        route[1]["weight"] = json!(canary);
    }

    pub fn selector(&self, service: &str) -> Option<String> {
        self.observed.services[service].selector.get(POD_TEMPLATE_HASH_LABEL).cloned()
    }

    pub fn events(&self) -> Vec<&'static str> {
        self.plans.iter().flat_map(|p| p.events.iter().map(|e| e.reason)).collect()
    }
}
