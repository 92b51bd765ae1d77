//! A container's `securityContext`, over its pod's, as the engine's settings: the user
//! and groups it runs as (`runAsNonRoot` checked against the image as the kubelet checks
//! it), privileged, capabilities, a read-only root, no privilege escalation, and the
//! seccomp profile — Kubernetes' default is none (`Unconfined`) unless the pod asks for
//! `RuntimeDefault`. What Berth does not enforce is refused by name.

use std::path::Path;

use berth_engine::{ContainerSecurity, Seccomp};
use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};

use crate::spec::Refusal;

/// The engine's settings for `container` of `pod`, whose image runs as `image_user`.
pub fn settings(
    pod: &Pod,
    container: &Container,
    (image_user, profiles): (&str, &Path),
) -> Result<ContainerSecurity, Refusal> {
    let pod_context = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let own = container.security_context.clone().unwrap_or_default();
    let refuse = |field: &str| {
        Refusal::Unsupported(format!(
            "securityContext.{field} (container {:?})",
            container.name
        ))
    };
    if own.se_linux_options.is_some() || pod_context.se_linux_options.is_some() {
        return Err(refuse("seLinuxOptions"));
    }
    if own.app_armor_profile.is_some() || pod_context.app_armor_profile.is_some() {
        return Err(refuse("appArmorProfile"));
    }
    if own.proc_mount.as_deref().is_some_and(|m| m != "Default") {
        return Err(refuse("procMount"));
    }
    if pod_context.sysctls.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(refuse("sysctls"));
    }
    let run_as_user = own.run_as_user.or(pod_context.run_as_user);
    let run_as_group = own.run_as_group.or(pod_context.run_as_group);
    if own.run_as_non_root.or(pod_context.run_as_non_root) == Some(true) {
        check_non_root(run_as_user, image_user, &container.name, pod)?;
    }
    let user = match (run_as_user, run_as_group) {
        (Some(uid), Some(gid)) => format!("{uid}:{gid}"),
        (Some(uid), None) => uid.to_string(),
        (None, Some(gid)) => {
            let user = image_user
                .split(':')
                .next()
                .filter(|u| !u.is_empty())
                .unwrap_or("0");
            format!("{user}:{gid}")
        }
        (None, None) => String::new(),
    };
    let mut groups: Vec<u32> = pod_context
        .supplemental_groups
        .iter()
        .flatten()
        .chain(pod_context.fs_group.iter())
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    groups.dedup();
    let capabilities = own.capabilities.unwrap_or_default();
    let seccomp = own.seccomp_profile.or(pod_context.seccomp_profile);
    Ok(ContainerSecurity {
        user,
        supplementary_groups: groups,
        privileged: own.privileged == Some(true),
        read_only_root: own.read_only_root_filesystem == Some(true),
        cap_add: capabilities.add.unwrap_or_default(),
        cap_drop: capabilities.drop.unwrap_or_default(),
        no_new_privileges: own.allow_privilege_escalation == Some(false),
        seccomp: seccomp_of(seccomp.as_ref(), profiles)?,
    })
}

/// The container's seccomp filter: none unless the pod asks (`RuntimeDefault`, or a
/// `Localhost` profile read from the node's `profiles` folder, the kubelet's
/// /var/lib/kubelet/seccomp).
fn seccomp_of(profile: Option<&SeccompProfile>, profiles: &Path) -> Result<Seccomp, Refusal> {
    let Some(profile) = profile else {
        return Ok(Seccomp::Unconfined);
    };
    match profile.type_.as_str() {
        "Unconfined" => Ok(Seccomp::Unconfined),
        "RuntimeDefault" => Ok(Seccomp::RuntimeDefault),
        "Localhost" => {
            let name = profile.localhost_profile.as_deref().unwrap_or_default();
            if name.is_empty() || name.starts_with('/') || name.split('/').any(|p| p == "..") {
                return Err(Refusal::Invalid(format!(
                    "seccompProfile localhostProfile {name:?} must name a file under the node's seccomp folder"
                )));
            }
            let path = profiles.join(name);
            let json = std::fs::read_to_string(&path).map_err(|e| {
                Refusal::Invalid(format!("seccomp profile {}: {e}", path.display()))
            })?;
            Ok(Seccomp::Profile(json))
        }
        other => Err(Refusal::Invalid(format!(
            "seccompProfile type {other:?} is not RuntimeDefault, Unconfined or Localhost"
        ))),
    }
}

/// The kubelet's check of `runAsNonRoot`: a uid asked for must not be 0; else the
/// image's user must be a number other than 0.
fn check_non_root(
    run_as_user: Option<i64>,
    image_user: &str,
    container: &str,
    pod: &Pod,
) -> Result<(), Refusal> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let as_root = || {
        Refusal::Invalid(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {container})"
        ))
    };
    if let Some(uid) = run_as_user {
        return if uid == 0 { Err(as_root()) } else { Ok(()) };
    }
    let user = image_user.split(':').next().unwrap_or_default();
    match user.parse::<u32>() {
        Ok(0) => Err(as_root()),
        Ok(_) => Ok(()),
        Err(_) if user.is_empty() || user == "root" => Err(as_root()),
        Err(_) => Err(Refusal::Invalid(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod_name:?}, container: {container})"
        ))),
    }
}
