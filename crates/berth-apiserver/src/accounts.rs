//! The ServiceAccount admission plugin, as kube-apiserver's: a pod being created runs as
//! `default` unless it names an account, and — unless it or its account turns
//! automounting off, or it mounts something there itself — gets the account's token,
//! the cluster CA and its namespace in a projected volume (`kube-api-access-XXXXX`) at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container, which the node's
//! agent fills from the TokenRequest API.

use base64::Engine as _;
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
    ObjectFieldSelector, PodSpec, ProjectedVolumeSource, ServiceAccount,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use serde_json::Value;

use crate::Shared;
use crate::status::Status;

/// Where pods find their account's credentials.
const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long the projected token lives, as kube-apiserver asks (an hour, and a little
/// more so that it is told apart from a token a pod asked for itself).
const TOKEN_EXPIRATION: i64 = 3607;

/// Gives a pod being created its account and, unless it opts out, the volume of the
/// account's credentials.
pub(crate) fn admit(shared: &Shared, pod: &mut Value) -> Result<(), Status> {
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut spec: PodSpec = serde_json::from_value(pod["spec"].take())
        .map_err(|e| Status::bad_request(format!("the pod's spec: {e}")))?;
    let account_name = spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| spec.service_account.clone().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".into());
    spec.service_account_name = Some(account_name.clone());
    spec.service_account = Some(account_name.clone());
    let account = account(shared, &namespace, &account_name);
    let automount = spec
        .automount_service_account_token
        .or_else(|| account.and_then(|a| a.automount_service_account_token))
        .unwrap_or(true);
    if automount && !mounts_credentials(&spec) {
        mount_credentials(&mut spec)?;
    }
    pod["spec"] = serde_json::to_value(&spec)
        .map_err(|e| Status::bad_request(format!("the pod's spec: {e}")))?;
    Ok(())
}

/// The type of the Secrets that hold a legacy token of an account.
const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";

/// The annotation that names a token Secret's account, and the one the server adds
/// with its uid.
const ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
const ACCOUNT_UID: &str = "kubernetes.io/service-account.uid";

/// Fills a Secret being created as a legacy token Secret with the account's token, the
/// cluster CA and the namespace, as kube-controller-manager's token controller fills
/// it; other Secrets pass as they are. The account must exist: the token controller
/// would delete a Secret whose account does not.
pub(crate) fn issue_legacy_token(shared: &Shared, secret: &mut Value) -> Result<(), Status> {
    if secret["type"] != TOKEN_SECRET_TYPE {
        return Ok(());
    }
    let metadata = &secret["metadata"];
    let name = metadata["name"].as_str().unwrap_or_default().to_string();
    let namespace = metadata["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let account_name = metadata["annotations"][ACCOUNT_NAME]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            let field = format!("metadata.annotations[{ACCOUNT_NAME}]");
            Status::invalid("Secret", &name, crate::kinds::required(&field))
        })?
        .to_string();
    let account = account(shared, &namespace, &account_name)
        .ok_or_else(|| Status::not_found("serviceaccounts", &account_name))?;
    let uid = account.metadata.uid.unwrap_or_default();
    let token = shared
        .signer
        .legacy_token((&namespace, &account_name, &uid), &name)?;
    secret["metadata"]["annotations"][ACCOUNT_UID] = Value::from(uid);
    let encode = |text: &str| Value::from(base64::engine::general_purpose::STANDARD.encode(text));
    let data = &mut secret["data"];
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    data["token"] = encode(&token);
    data["ca.crt"] = encode(&shared.ca);
    data["namespace"] = encode(&namespace);
    Ok(())
}

/// The account, from the watch cache.
fn account(shared: &Shared, namespace: &str, name: &str) -> Option<ServiceAccount> {
    shared
        .cache
        .typed(&format!("/registry/serviceaccounts/{namespace}/{name}"))
}

fn mounts_credentials(spec: &PodSpec) -> bool {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| m.mount_path.trim_end_matches('/') == MOUNT_PATH)
}

fn mount_credentials(spec: &mut PodSpec) -> Result<(), Status> {
    let name = format!("kube-api-access-{}", crate::objects::random_suffix()?);
    spec.volumes
        .get_or_insert_with(Vec::new)
        .push(credentials_volume(&name));
    let mount = VolumeMount {
        name,
        mount_path: MOUNT_PATH.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount.clone());
    }
    Ok(())
}

/// The projected volume kube-apiserver adds: token, CA and namespace.
fn credentials_volume(name: &str) -> Volume {
    let token = VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            expiration_seconds: Some(TOKEN_EXPIRATION),
            path: "token".into(),
            audience: None,
        }),
        ..VolumeProjection::default()
    };
    let ca = VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: "kube-root-ca.crt".into(),
            items: Some(vec![KeyToPath {
                key: "ca.crt".into(),
                path: "ca.crt".into(),
                mode: None,
            }]),
            optional: None,
        }),
        ..VolumeProjection::default()
    };
    let namespace = VolumeProjection {
        downward_api: Some(DownwardAPIProjection {
            items: Some(vec![DownwardAPIVolumeFile {
                path: "namespace".into(),
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: "metadata.namespace".into(),
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
        }),
        ..VolumeProjection::default()
    };
    Volume {
        name: name.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![token, ca, namespace]),
        }),
        ..Volume::default()
    }
}
