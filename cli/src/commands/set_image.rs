//! `set image`: a read-modify-update of the pod template, on the Rollout or on the Deployment
//! its workloadRef names.

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use rollouts_controller::api::{Rollout, WorkloadKind};

use super::print;
use crate::client::{Cluster, Verb, explain, status_code};
use crate::patches;

/// Tries before giving up on someone else updating the same object.
const UPDATE_ATTEMPTS: usize = 5;

/// The object that holds a rollout's pod template.
pub(super) struct TemplateOwner {
    /// Plural, as RBAC spells it (for messages).
    pub resource: &'static str,
    /// Lower-case kind, as the output names it.
    pub kind: &'static str,
    pub name: String,
}

/// Where the rollout's pod template lives: in the Rollout, or in a workloadRef Deployment.
pub(super) fn template_owner(rollout: &Rollout, name: &str, command: &str) -> Result<TemplateOwner> {
    match &rollout.spec.workload_ref {
        None => Ok(TemplateOwner { resource: "rollouts", kind: "rollout", name: name.to_string() }),
        Some(reference) if reference.kind == WorkloadKind::Deployment => {
            Ok(TemplateOwner { resource: "deployments", kind: "deployment", name: reference.name.clone() })
        }
        Some(reference) => bail!(
            "rollout \"{name}\" takes its pod template from a {} ({}); {command} supports only a Deployment",
            reference.kind,
            reference.name
        ),
    }
}

impl TemplateOwner {
    pub(super) fn api(&self, cluster: &Cluster) -> Api<DynamicObject> {
        let resource = if self.resource == "deployments" {
            ApiResource::erase::<Deployment>(&())
        } else {
            ApiResource::erase::<Rollout>(&())
        };
        Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &resource)
    }
}

pub async fn set_image(cluster: &Cluster, name: &str, container: &str, image: &str) -> Result<()> {
    let rollout = cluster.rollout(name).await?;
    let owner = template_owner(&rollout, name, "set image")?;
    let api = owner.api(cluster);
    let failed = |error, verb| explain(error, cluster.request(verb, owner.resource, Some(&owner.name)));
    let mut attempt = 1;
    loop {
        let mut object = api.get(&owner.name).await.map_err(|e| failed(e, Verb::Get))?;
        let pod_spec = &mut object.data["spec"]["template"]["spec"];
        patches::set_image(pod_spec, container, image)?;
        match api.replace(&owner.name, &PostParams::default(), &object).await {
            Ok(_) => break,
            Err(error) if status_code(&error) == Some(409) && attempt < UPDATE_ATTEMPTS => attempt += 1,
            Err(error) => return Err(failed(error, Verb::Update)),
        }
    }
    print(&format!("{} \"{}\" image updated\n", owner.kind, owner.name))
}
