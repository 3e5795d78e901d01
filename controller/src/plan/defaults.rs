//! The defaults the apiserver fills into a pod template (a ReplicaSet's `spec.template`), applied
//! to a template before it is hashed. A template read back from a ReplicaSet (what `undo` puts
//! into a Rollout) then hashes like the one the ReplicaSet was made from, and the old ReplicaSet
//! is found and re-used. The list follows Kubernetes' `SetDefaults_PodSpec`, `_Container`,
//! `_Probe`, `_Volume` and their kin for 1.33–1.36, plus what a read-back changes without being a
//! default (quantities in canonical form, `serviceAccount` mirrored, empty structs written out).
//! A default missing here only costs re-use: `undo` then rolls the same pods out as a new
//! ReplicaSet. The e2e test `templates_read_back_from_a_replica_set_hash_the_same` checks it
//! against a real apiserver.

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, EnvVar, HTTPGetAction, Lifecycle, PodSpec, PodTemplateSpec, Probe,
    ResourceFieldSelector, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// `template` with every default the apiserver would fill in.
pub fn with_defaults(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    template.metadata.get_or_insert_with(Default::default);
    let spec = template.spec.get_or_insert_with(PodSpec::default);
    default_string(&mut spec.dns_policy, "ClusterFirst");
    default_string(&mut spec.restart_policy, "Always");
    default_string(&mut spec.scheduler_name, "default-scheduler");
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    // The deprecated alias reads back as serviceAccountName, which wins when both are set.
    let account = spec.service_account_name.clone().filter(|n| !n.is_empty()).or(spec.service_account.clone());
    if let Some(account) = account.filter(|n| !n.is_empty()) {
        spec.service_account_name = Some(account.clone());
        spec.service_account = Some(account);
    }
    for container in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        container_defaults(container);
    }
    for volume in spec.volumes.iter_mut().flatten() {
        volume_defaults(volume);
    }
    canonical_quantities(spec.overhead.as_mut());
    template
}

fn default_string(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.into());
    }
}

fn default_number(field: &mut Option<i32>, value: i32) {
    if field.is_none_or(|n| n == 0) {
        *field = Some(value);
    }
}

fn container_defaults(container: &mut Container) {
    let policy = pull_policy(container.image.as_deref().unwrap_or_default());
    default_string(&mut container.image_pull_policy, policy);
    default_string(&mut container.termination_message_path, "/dev/termination-log");
    default_string(&mut container.termination_message_policy, "File");
    for port in container.ports.iter_mut().flatten() {
        default_string(&mut port.protocol, "TCP");
    }
    for env in container.env.iter_mut().flatten() {
        env_defaults(env);
    }
    let resources = container.resources.get_or_insert_with(Default::default);
    canonical_quantities(resources.limits.as_mut());
    canonical_quantities(resources.requests.as_mut());
    for probe in [&mut container.liveness_probe, &mut container.readiness_probe, &mut container.startup_probe] {
        if let Some(probe) = probe.as_mut() {
            probe_defaults(probe);
        }
    }
    if let Some(Lifecycle { post_start, pre_stop, .. }) = container.lifecycle.as_mut() {
        for handler in [post_start, pre_stop].into_iter().flatten() {
            if let Some(http) = handler.http_get.as_mut() {
                http_defaults(http);
            }
        }
    }
}

fn env_defaults(env: &mut EnvVar) {
    let Some(source) = env.value_from.as_mut() else { return };
    if let Some(field) = source.field_ref.as_mut() {
        default_string(&mut field.api_version, "v1");
    }
    if let Some(resource) = source.resource_field_ref.as_mut() {
        divisor_default(resource);
    }
}

fn divisor_default(selector: &mut ResourceFieldSelector) {
    let divisor = selector.divisor.get_or_insert_with(|| Quantity("0".into()));
    *divisor = canonical(divisor);
}

fn probe_defaults(probe: &mut Probe) {
    default_number(&mut probe.timeout_seconds, 1);
    default_number(&mut probe.period_seconds, 10);
    default_number(&mut probe.success_threshold, 1);
    default_number(&mut probe.failure_threshold, 3);
    if let Some(http) = probe.http_get.as_mut() {
        http_defaults(http);
    }
    if let Some(grpc) = probe.grpc.as_mut() {
        grpc.service.get_or_insert_with(String::new);
    }
}

fn http_defaults(http: &mut HTTPGetAction) {
    default_string(&mut http.path, "/");
    default_string(&mut http.scheme, "HTTP");
}

const DEFAULT_MODE: i32 = 0o644;

fn volume_defaults(volume: &mut Volume) {
    // A volume that names no source is an emptyDir.
    let sources = serde_json::to_value(&*volume).ok().and_then(|v| v.as_object().map(|o| o.len())).unwrap_or(0);
    if sources <= 1 {
        volume.empty_dir = Some(Default::default());
    }
    if let Some(host_path) = volume.host_path.as_mut() {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(secret) = volume.secret.as_mut() {
        secret.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(config_map) = volume.config_map.as_mut() {
        config_map.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(downward) = volume.downward_api.as_mut() {
        downward.default_mode.get_or_insert(DEFAULT_MODE);
        downward.items.iter_mut().flatten().for_each(downward_item_defaults);
    }
    if let Some(projected) = volume.projected.as_mut() {
        projected.default_mode.get_or_insert(DEFAULT_MODE);
        for source in projected.sources.iter_mut().flatten() {
            source.downward_api.iter_mut().flat_map(|d| d.items.iter_mut().flatten()).for_each(downward_item_defaults);
            if let Some(token) = source.service_account_token.as_mut() {
                token.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(iscsi) = volume.iscsi.as_mut() {
        default_string(&mut iscsi.iscsi_interface, "default");
    }
    if let Some(rbd) = volume.rbd.as_mut() {
        default_string(&mut rbd.pool, "rbd");
        default_string(&mut rbd.user, "admin");
        default_string(&mut rbd.keyring, "/etc/ceph/keyring");
    }
    if let Some(disk) = volume.azure_disk.as_mut() {
        default_string(&mut disk.caching_mode, "ReadWrite");
        default_string(&mut disk.fs_type, "ext4");
        default_string(&mut disk.kind, "Shared");
        disk.read_only.get_or_insert(false);
    }
    if let Some(scale_io) = volume.scale_io.as_mut() {
        default_string(&mut scale_io.storage_mode, "ThinProvisioned");
        default_string(&mut scale_io.fs_type, "xfs");
    }
    if let Some(claim) = volume.ephemeral.as_mut().and_then(|e| e.volume_claim_template.as_mut()) {
        default_string(&mut claim.spec.volume_mode, "Filesystem");
        if let Some(resources) = claim.spec.resources.as_mut() {
            canonical_quantities(resources.limits.as_mut());
            canonical_quantities(resources.requests.as_mut());
        }
    }
    if let Some(image) = volume.image.as_mut() {
        let policy = pull_policy(image.reference.as_deref().unwrap_or_default());
        default_string(&mut image.pull_policy, policy);
    }
}

fn downward_item_defaults(item: &mut DownwardAPIVolumeFile) {
    if let Some(field) = item.field_ref.as_mut() {
        default_string(&mut field.api_version, "v1");
    }
    if let Some(resource) = item.resource_field_ref.as_mut() {
        divisor_default(resource);
    }
}

/// `Always` for an image whose tag is `latest` or missing (and that has no digest), else
/// `IfNotPresent`, as Kubernetes parses image references.
fn pull_policy(image: &str) -> &'static str {
    if image.is_empty() {
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it belongs to a registry port).
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let tag = last_segment.split_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// Quantities as the apiserver writes them back: equal values, equal text. Written here as whole
/// thousandths (rounded up, as the apiserver rounds), which is enough for comparing.
fn canonical_quantities(quantities: Option<&mut BTreeMap<String, Quantity>>) {
    for quantity in quantities.into_iter().flat_map(|q| q.values_mut()) {
        *quantity = canonical(quantity);
    }
}

fn canonical(quantity: &Quantity) -> Quantity {
    milli_value(&quantity.0).map_or_else(|| quantity.clone(), |milli| Quantity(format!("{milli}m")))
}

/// The value of a quantity in thousandths, rounded up; `None` if it doesn't parse or is huge.
fn milli_value(text: &str) -> Option<i128> {
    let text = text.trim();
    let number_end =
        text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() || whole.len() + fraction.len() > 30 {
        return None;
    }
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    // value = mantissa * 10^(-fraction digits) * multiplier; as numerator / denominator.
    let mut numerator = mantissa.checked_mul(1000)?;
    let mut denominator: i128 = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let power_of = |base: i128, exponent: u32| base.checked_pow(exponent);
    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let step = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].iter().position(|s| *s == suffix)? as u32 + 1;
            numerator = numerator.checked_mul(power_of(1024, step)?)?;
        }
        "n" => denominator = denominator.checked_mul(1_000_000_000)?,
        "u" => denominator = denominator.checked_mul(1_000_000)?,
        "m" => denominator = denominator.checked_mul(1_000)?,
        "k" | "M" | "G" | "T" | "P" | "E" => {
            let step = ["k", "M", "G", "T", "P", "E"].iter().position(|s| *s == suffix)? as u32 + 1;
            numerator = numerator.checked_mul(power_of(1000, step)?)?;
        }
        exponent if exponent.starts_with(['e', 'E']) => {
            let exponent: i32 = exponent[1..].parse().ok()?;
            let scale = power_of(10, exponent.unsigned_abs())?;
            if exponent >= 0 {
                numerator = numerator.checked_mul(scale)?;
            } else {
                denominator = denominator.checked_mul(scale)?;
            }
        }
        _ => return None,
    }
    let rounded_up = numerator.abs().checked_add(denominator - 1)? / denominator;
    Some(if negative { -rounded_up } else { rounded_up })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(value: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_plain_template_gets_the_pod_and_container_defaults() {
        let defaulted = with_defaults(&template(json!({"spec": {"containers": [{"name": "web", "image": "nginx"}]}})));
        let value = serde_json::to_value(&defaulted).unwrap();
        assert_eq!(value["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(value["spec"]["restartPolicy"], "Always");
        assert_eq!(value["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(value["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(value["spec"]["securityContext"], json!({}));
        let container = &value["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], "Always");
        assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(container["terminationMessagePolicy"], "File");
        assert_eq!(container["resources"], json!({}));
    }

    #[test]
    fn defaults_are_idempotent() {
        let rich = template(json!({"spec": {
            "serviceAccount": "old-name",
            "containers": [{"name": "web", "image": "registry:5000/web:1.2",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "0.1", "memory": "1024Mi"}},
                "readinessProbe": {"httpGet": {"port": 80}},
                "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}],
            "volumes": [{"name": "scratch"}, {"name": "conf", "configMap": {"name": "c"}}]
        }}));
        let once = with_defaults(&rich);
        assert_eq!(with_defaults(&once), once);
        let value = serde_json::to_value(&once).unwrap();
        let container = &value["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], "IfNotPresent", "a registry port is not a tag");
        assert_eq!(container["ports"][0]["protocol"], "TCP");
        assert_eq!(container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(container["resources"]["requests"], json!({"cpu": "100m", "memory": "1073741824000m"}));
        assert_eq!(container["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(container["lifecycle"]["preStop"]["httpGet"]["path"], "/");
        assert_eq!(value["spec"]["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(value["spec"]["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(value["spec"]["serviceAccountName"], "old-name");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("localhost:5000/app", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:0123", "IfNotPresent"),
            ("nginx:latest@sha256:0123", "Always"),
            ("", "IfNotPresent"),
        ] {
            assert_eq!(pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn equal_quantities_read_the_same() {
        let milli = |q: &str| milli_value(q).unwrap();
        assert_eq!(milli("0.1"), milli("100m"));
        assert_eq!(milli("1Gi"), milli("1024Mi"));
        assert_eq!(milli("1k"), milli("1e3"));
        assert_eq!(milli("1E"), 1_000_000_000_000_000_000_000);
        assert_eq!(milli("3.000023m"), 4, "rounded up to thousandths");
        assert_eq!(milli_value("12x"), None);
        assert_eq!(milli_value("9".repeat(40).as_str()), None);
    }
}
