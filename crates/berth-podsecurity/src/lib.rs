//! The Pod Security Standards as Kubernetes' PodSecurity admission checks a pod
//! (`latest` version): the baseline level's checks, and the restricted level's on top,
//! run in the order of their check IDs, each failure worded as kube-apiserver words it
//! (`allowPrivilegeEscalation != false (container "app" must set
//! securityContext.allowPrivilegeEscalation=false)`), so the API server's admission
//! can refuse or warn exactly as kube-apiserver does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

/// A level of the Pod Security Standards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No restrictions.
    Privileged,
    /// Known privilege escalations prevented.
    Baseline,
    /// Hardening best practices on top.
    Restricted,
}

impl Level {
    /// The level a namespace label names; None for a value that is not one.
    pub fn parse(label: &str) -> Option<Self> {
        match label {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    /// Its name in labels and messages.
    pub fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The capabilities the baseline level lets containers add (the container runtimes'
/// defaults).
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The sysctls the baseline level allows: namespaced and isolated.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The SELinux types the baseline level allows.
const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// The volume types the restricted level allows, by their field names.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// What in a pod breaks `level`, each as PodSecurity admission words it; empty when
/// the pod meets it. `annotations` are the pod's (AppArmor's older form lives there).
pub fn violations(
    level: Level,
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
) -> Vec<String> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    let pod = Pod {
        annotations,
        spec,
        containers,
    };
    let restricted = level == Level::Restricted;
    // In the order of kube's check IDs.
    [
        restricted.then(|| pod.privilege_escalation()).flatten(),
        pod.app_armor(),
        pod.baseline_capabilities(),
        restricted.then(|| pod.restricted_capabilities()).flatten(),
        pod.host_namespaces(),
        pod.host_path_volumes(),
        pod.host_ports(),
        pod.privileged(),
        pod.proc_mount(),
        restricted.then(|| pod.restricted_volumes()).flatten(),
        restricted.then(|| pod.run_as_non_root()).flatten(),
        restricted.then(|| pod.run_as_user()).flatten(),
        pod.selinux(),
        pod.baseline_seccomp(),
        restricted.then(|| pod.restricted_seccomp()).flatten(),
        pod.sysctls(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The pod being checked.
struct Pod<'a> {
    annotations: &'a BTreeMap<String, String>,
    spec: &'a PodSpec,
    /// Init containers, then containers.
    containers: Vec<&'a Container>,
}

/// `container "a"` or `containers "a", "b"`.
fn named(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let noun = if names.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{noun} {}", quoted.join(", "))
}

/// `must` or `must not` phrases joined as kube joins them.
fn joined(parts: Vec<String>) -> String {
    parts.join(", ")
}

impl<'a> Pod<'a> {
    /// The names of the containers whose security context `test` picks.
    fn containers_where(&self, test: impl Fn(Option<&SecurityContext>) -> bool) -> Vec<&'a str> {
        self.containers
            .iter()
            .filter(|c| test(c.security_context.as_ref()))
            .map(|c| c.name.as_str())
            .collect()
    }

    fn privilege_escalation(&self) -> Option<String> {
        let bad =
            self.containers_where(|s| s.and_then(|s| s.allow_privilege_escalation) != Some(false));
        (!bad.is_empty()).then(|| {
            format!(
                "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
                named(&bad)
            )
        })
    }

    fn app_armor(&self) -> Option<String> {
        let mut bad = Vec::new();
        let pod_profile = self
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.app_armor_profile.as_ref());
        if pod_profile.is_some_and(|p| p.type_ == "Unconfined") {
            bad.push(
                "pod must not set securityContext.appArmorProfile.type to \"Unconfined\""
                    .to_string(),
            );
        }
        let unconfined = self.containers_where(|s| {
            s.and_then(|s| s.app_armor_profile.as_ref())
                .is_some_and(|p| p.type_ == "Unconfined")
        });
        if !unconfined.is_empty() {
            bad.push(format!(
                "{} must not set securityContext.appArmorProfile.type to \"Unconfined\"",
                named(&unconfined)
            ));
        }
        for (key, value) in self.annotations {
            if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && value != "runtime/default"
                && !value.starts_with("localhost/")
            {
                bad.push(format!("annotation {key}={value:?}"));
            }
        }
        (!bad.is_empty()).then(|| format!("forbidden AppArmor profile ({})", joined(bad)))
    }

    fn added_capabilities(&self, allowed: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        for container in &self.containers {
            let added = container
                .security_context
                .as_ref()
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|c| c.add.as_ref());
            let bad: Vec<String> = added
                .into_iter()
                .flatten()
                .filter(|c| !allowed.contains(&c.as_str()))
                .map(|c| format!("{c:?}"))
                .collect();
            if !bad.is_empty() {
                found.push(format!(
                    "container {:?} must not include {} in securityContext.capabilities.add",
                    container.name,
                    bad.join(", ")
                ));
            }
        }
        found
    }

    fn baseline_capabilities(&self) -> Option<String> {
        let bad = self.added_capabilities(&DEFAULT_CAPABILITIES);
        (!bad.is_empty()).then(|| format!("non-default capabilities ({})", joined(bad)))
    }

    fn restricted_capabilities(&self) -> Option<String> {
        let undropped = self.containers_where(|s| {
            !s.and_then(|s| s.capabilities.as_ref())
                .and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|c| c == "ALL"))
        });
        let mut bad = Vec::new();
        if !undropped.is_empty() {
            bad.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                named(&undropped)
            ));
        }
        bad.extend(self.added_capabilities(&["NET_BIND_SERVICE"]));
        (!bad.is_empty()).then(|| format!("unrestricted capabilities ({})", joined(bad)))
    }

    fn host_namespaces(&self) -> Option<String> {
        let spec = self.spec;
        let set: Vec<&str> = [
            (spec.host_network, "hostNetwork=true"),
            (spec.host_pid, "hostPID=true"),
            (spec.host_ipc, "hostIPC=true"),
        ]
        .into_iter()
        .filter(|(on, _)| *on == Some(true))
        .map(|(_, what)| what)
        .collect();
        (!set.is_empty()).then(|| format!("host namespaces ({})", set.join(", ")))
    }

    fn host_path_volumes(&self) -> Option<String> {
        let volumes: Vec<String> = self
            .spec
            .volumes
            .iter()
            .flatten()
            .filter(|v| v.host_path.is_some())
            .map(|v| format!("{:?}", v.name))
            .collect();
        (!volumes.is_empty()).then(|| {
            let noun = if volumes.len() == 1 {
                "volume"
            } else {
                "volumes"
            };
            format!("hostPath volumes ({noun} {})", volumes.join(", "))
        })
    }

    fn host_ports(&self) -> Option<String> {
        let mut bad = Vec::new();
        for container in &self.containers {
            let ports: Vec<String> = container
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.host_port.filter(|h| *h != 0))
                .map(|p| p.to_string())
                .collect();
            if !ports.is_empty() {
                let noun = if ports.len() == 1 {
                    "hostPort"
                } else {
                    "hostPorts"
                };
                bad.push(format!(
                    "container {:?} uses {noun} {}",
                    container.name,
                    ports.join(", ")
                ));
            }
        }
        (!bad.is_empty()).then(|| format!("hostPort ({})", joined(bad)))
    }

    fn privileged(&self) -> Option<String> {
        let bad = self.containers_where(|s| s.and_then(|s| s.privileged) == Some(true));
        (!bad.is_empty()).then(|| {
            format!(
                "privileged ({} must not set securityContext.privileged=true)",
                named(&bad)
            )
        })
    }

    fn proc_mount(&self) -> Option<String> {
        let bad = self.containers_where(|s| {
            s.and_then(|s| s.proc_mount.as_deref())
                .is_some_and(|m| m != "Default")
        });
        (!bad.is_empty()).then(|| {
            format!(
                "procMount ({} must not set securityContext.procMount to \"Unmasked\")",
                named(&bad)
            )
        })
    }

    fn restricted_volumes(&self) -> Option<String> {
        let mut bad = Vec::new();
        for volume in self.spec.volumes.iter().flatten() {
            let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(volume) else {
                continue;
            };
            let kind = fields.keys().find(|k| *k != "name");
            if let Some(kind) = kind
                && !RESTRICTED_VOLUMES.contains(&kind.as_str())
            {
                bad.push(format!(
                    "volume {:?} uses restricted volume type {kind:?}",
                    volume.name
                ));
            }
        }
        (!bad.is_empty()).then(|| format!("restricted volume types ({})", joined(bad)))
    }

    fn run_as_non_root(&self) -> Option<String> {
        let pod = self
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root);
        let explicitly_false = pod == Some(false);
        let unset = self.containers_where(|s| match s.and_then(|s| s.run_as_non_root) {
            Some(value) => !value,
            None => pod != Some(true),
        });
        if unset.is_empty() && !explicitly_false {
            return None;
        }
        let mut bad = Vec::new();
        if explicitly_false {
            bad.push("pod must not set securityContext.runAsNonRoot=false".to_string());
        }
        if !unset.is_empty() {
            bad.push(format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                named(&unset)
            ));
        }
        Some(format!("runAsNonRoot != true ({})", joined(bad)))
    }

    fn run_as_user(&self) -> Option<String> {
        let mut bad = Vec::new();
        let pod = self
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user);
        if pod == Some(0) {
            bad.push("pod must not set runAsUser=0".to_string());
        }
        let root = self.containers_where(|s| s.and_then(|s| s.run_as_user) == Some(0));
        if !root.is_empty() {
            bad.push(format!("{} must not set runAsUser=0", named(&root)));
        }
        (!bad.is_empty()).then(|| format!("runAsUser=0 ({})", joined(bad)))
    }

    fn selinux(&self) -> Option<String> {
        let allowed = |options: &k8s_openapi::api::core::v1::SELinuxOptions| {
            SELINUX_TYPES.contains(&options.type_.as_deref().unwrap_or_default())
                && options.user.as_deref().is_none_or(str::is_empty)
                && options.role.as_deref().is_none_or(str::is_empty)
        };
        let pod = self
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.se_linux_options.as_ref())
            .is_some_and(|o| !allowed(o));
        let bad = self.containers_where(|s| {
            s.and_then(|s| s.se_linux_options.as_ref())
                .is_some_and(|o| !allowed(o))
        });
        if !pod && bad.is_empty() {
            return None;
        }
        let mut found = Vec::new();
        if pod {
            found.push("pod must not set forbidden securityContext.seLinuxOptions".to_string());
        }
        if !bad.is_empty() {
            found.push(format!(
                "{} must not set forbidden securityContext.seLinuxOptions",
                named(&bad)
            ));
        }
        Some(format!("seLinuxOptions ({})", joined(found)))
    }

    fn pod_seccomp(&self) -> Option<&'a str> {
        self.spec
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.as_str())
    }

    fn baseline_seccomp(&self) -> Option<String> {
        let mut bad = Vec::new();
        if self.pod_seccomp() == Some("Unconfined") {
            bad.push(
                "pod must not set securityContext.seccompProfile.type to \"Unconfined\""
                    .to_string(),
            );
        }
        let unconfined = self.containers_where(|s| {
            s.and_then(|s| s.seccomp_profile.as_ref())
                .is_some_and(|p| p.type_ == "Unconfined")
        });
        if !unconfined.is_empty() {
            bad.push(format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                named(&unconfined)
            ));
        }
        (!bad.is_empty()).then(|| format!("seccompProfile ({})", joined(bad)))
    }

    fn restricted_seccomp(&self) -> Option<String> {
        let confined = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
        let pod = self.pod_seccomp();
        let unset = self.containers_where(|s| match s.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(profile) => !confined(&profile.type_) && profile.type_ != "Unconfined",
            None => !pod.is_some_and(confined),
        });
        (!unset.is_empty()).then(|| {
            format!(
                "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                named(&unset)
            )
        })
    }

    fn sysctls(&self) -> Option<String> {
        let bad: Vec<&str> = self
            .spec
            .security_context
            .as_ref()
            .and_then(|s| s.sysctls.as_ref())
            .into_iter()
            .flatten()
            .map(|s| s.name.as_str())
            .filter(|name| !SAFE_SYSCTLS.contains(name))
            .collect();
        (!bad.is_empty()).then(|| format!("forbidden sysctls ({})", bad.join(", ")))
    }
}

#[cfg(test)]
mod tests;
