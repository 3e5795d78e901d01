//! VirtualService weights and header routes, written as a JSON Patch through the dynamic API.

use kube::api::{Api, DynamicObject, Patch};

use super::params;
use crate::context::{Context, Error};

pub async fn patch(ctx: &Context, namespace: &str, name: &str, operations: &[serde_json::Value]) -> Result<(), Error> {
    let resource = ctx.virtual_service_api().ok_or(Error::NoVirtualServiceApi)?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(operations.to_vec()))?;
    api.patch(name, &params(), &Patch::Json::<()>(patch)).await?;
    Ok(())
}
