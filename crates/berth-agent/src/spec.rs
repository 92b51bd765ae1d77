//! A pod and its containers turned into what the engine runs: the sandbox (host name,
//! host network, host ports) and each container (command and args, environment with
//! its sources resolved, working directory, volumes as binds, resource limits).
//! Whatever the agent does not run yet is refused by name, never ignored.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use berth_engine::{HostPort, PodContainerRequest, PodLimits, PodSandbox, SandboxRequest};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use kube::{Api, ResourceExt};

use crate::kubelet::{ATTEMPT, CONTAINER_NAME, Kubelet, POD_NAME, POD_NAMESPACE, POD_UID};

/// Why a pod or container cannot be run as asked.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A field the agent does not support yet.
    #[error("berth does not support {0} yet")]
    Unsupported(String),
    /// A value that is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A configMap, secret or key that is not there.
    #[error("{0}")]
    Missing(String),
    /// A volume that cannot be mounted (yet): the pod waits in ContainerCreating with
    /// FailedMount events, as with the kubelet.
    #[error("{0}")]
    Unmountable(String),
}

/// A file of a volume: its path in the volume, its content, its mode (the volume's
/// default mode when None).
pub(crate) type VolumeFile = (String, Vec<u8>, Option<i32>);

/// The labels every engine object of the pod carries.
fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    [
        (POD_UID, pod.uid().unwrap_or_default()),
        (POD_NAME, pod.name_any()),
        (POD_NAMESPACE, pod.namespace().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The dockershim's name pattern: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
fn engine_name(pod: &Pod, container: &str, attempt: u32) -> String {
    format!(
        "k8s_{container}_{}_{}_{}_{attempt}",
        pod.name_any(),
        pod.namespace().unwrap_or_default(),
        pod.uid().unwrap_or_default()
    )
}

/// The pod's domain when it has a subdomain (a StatefulSet's pods have their service's):
/// `<subdomain>.<namespace>.svc.cluster.local`, as the kubelet writes it in /etc/hosts.
fn pod_domain(pod: &Pod) -> String {
    let subdomain = pod.spec.as_ref().and_then(|s| s.subdomain.as_deref());
    match subdomain.filter(|s| !s.is_empty()) {
        Some(subdomain) => format!(
            "{subdomain}.{}.svc.cluster.local",
            pod.namespace().unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// The pod's hostAliases as /etc/hosts entries (`name:address`).
fn host_aliases(pod: &Pod) -> Vec<String> {
    let aliases = pod
        .spec
        .iter()
        .flat_map(|s| s.host_aliases.iter().flatten());
    aliases
        .flat_map(|alias| {
            let ip = alias.ip.clone();
            alias
                .hostnames
                .iter()
                .flatten()
                .map(move |name| format!("{name}:{ip}"))
        })
        .collect()
}

/// The sandbox of `pod`.
pub fn sandbox_request(pod: &Pod, dns: &crate::ClusterDns) -> Result<SandboxRequest, Refusal> {
    let spec = pod.spec.clone().unwrap_or_default();
    for (set, field) in [
        (spec.host_pid == Some(true), "hostPID"),
        (
            spec.share_process_namespace == Some(true),
            "shareProcessNamespace",
        ),
        (spec.host_users == Some(false), "hostUsers: false"),
    ] {
        if set {
            return Err(Refusal::Unsupported(format!("spec.{field}")));
        }
    }
    let mut host_ports = Vec::new();
    for container in &spec.containers {
        for port in container.ports.iter().flatten() {
            let Some(host_port) = port.host_port.filter(|p| *p > 0) else {
                continue;
            };
            let host_ip = match port.host_ip.as_deref() {
                None | Some("") => None,
                Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| {
                    Refusal::Invalid(format!("hostIP {text:?} is not an IPv4 address"))
                })?),
            };
            host_ports.push(HostPort {
                host_ip,
                host_port: u16::try_from(host_port).map_err(|_| {
                    Refusal::Invalid(format!("hostPort {host_port} is out of range"))
                })?,
                container_port: u16::try_from(port.container_port).map_err(|_| {
                    Refusal::Invalid(format!(
                        "containerPort {} is out of range",
                        port.container_port
                    ))
                })?,
                protocol: port.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
            });
        }
    }
    Ok(SandboxRequest {
        name: engine_name(pod, "POD", 0),
        hostname: spec.hostname.clone().unwrap_or_else(|| pod.name_any()),
        host_network: spec.host_network == Some(true),
        host_ipc: spec.host_ipc == Some(true),
        host_ports,
        labels: pod_labels(pod),
        cgroup: pod_cgroup(pod, &spec),
        limits: pod_limits(&spec)?,
        resolv_conf: crate::dns::resolv_conf(pod, dns, &host_resolv_conf())?,
        network_args: vec![
            (
                "K8S_POD_NAMESPACE".into(),
                pod.namespace().unwrap_or_default(),
            ),
            ("K8S_POD_NAME".into(), pod.name_any()),
            ("K8S_POD_UID".into(), pod.uid().unwrap_or_default()),
        ],
    })
}

/// The node's /etc/resolv.conf, which pods with dnsPolicy Default get and the
/// others' search paths extend.
fn host_resolv_conf() -> String {
    std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
}

/// The pod's cgroup under the node's (`kubepods`), as the kubelet lays them out by QoS
/// class: `pod<uid>` for Guaranteed pods, `burstable/pod<uid>`, `besteffort/pod<uid>`.
fn pod_cgroup(pod: &Pod, spec: &k8s_openapi::api::core::v1::PodSpec) -> String {
    let own = format!("pod{}", pod.uid().unwrap_or_default());
    match crate::status::qos_class(spec) {
        "Guaranteed" => own,
        class => format!("{}/{own}", class.to_lowercase()),
    }
}

/// The limits of the pod's cgroup, as the kubelet sets them: the CPU weight of all its
/// requests, and a CPU or memory limit only when every container (init containers too)
/// has one — the sum of the containers', or the largest init container's if more.
fn pod_limits(spec: &k8s_openapi::api::core::v1::PodSpec) -> Result<PodLimits, Refusal> {
    let each = |containers: &[Container]| -> Result<Vec<(i64, i64, i64)>, Refusal> {
        containers.iter().map(resources).collect()
    };
    let apps = each(&spec.containers)?;
    let inits = each(spec.init_containers.as_deref().unwrap_or_default())?;
    let all = || apps.iter().chain(&inits);
    let effective = |pick: fn(&(i64, i64, i64)) -> i64| {
        let sum: i64 = apps.iter().map(pick).sum();
        inits.iter().map(pick).max().unwrap_or(0).max(sum)
    };
    let declared = |pick: fn(&(i64, i64, i64)) -> i64| all().all(|c| pick(c) > 0);
    Ok(PodLimits {
        memory: if declared(|c| c.0) {
            effective(|c| c.0)
        } else {
            0
        },
        nano_cpus: if declared(|c| c.1) {
            effective(|c| c.1)
        } else {
            0
        },
        cpu_shares: effective(|c| c.2).max(2),
    })
}

/// Run `attempt` of `container` of `pod`, in `sandbox`.
pub async fn container_request(
    kubelet: &Kubelet,
    pod: &Pod,
    sandbox: &PodSandbox,
    container: &Container,
    attempt: u32,
) -> Result<PodContainerRequest, Refusal> {
    refuse_unsupported(container)?;
    let mut labels = pod_labels(pod);
    labels.insert(CONTAINER_NAME.into(), container.name.clone());
    labels.insert(ATTEMPT.into(), attempt.to_string());
    let (memory_limit, nano_cpus, cpu_shares) = resources(container)?;
    let env = environment(kubelet, pod, sandbox, container).await?;
    let image_user = kubelet
        .engine
        .images()
        .resolve(container.image.as_deref().unwrap_or_default())
        .and_then(|image| kubelet.engine.images().config(&image))
        .map(|config| {
            config["config"]["User"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    let profiles = kubelet.data_dir().join("seccomp");
    let security = crate::security::settings(pod, container, (&image_user, &profiles))?;
    // `$(NAME)` in command and args is the container's variable, as the kubelet has it.
    let expanded = |words: &Option<Vec<String>>| {
        words
            .as_ref()
            .map(|w| w.iter().map(|word| expand(word, &env)).collect::<Vec<_>>())
    };
    Ok(PodContainerRequest {
        name: engine_name(pod, &container.name, attempt),
        image: container.image.clone().unwrap_or_default(),
        command: expanded(&container.command),
        args: expanded(&container.args),
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        domain: pod_domain(pod),
        stdin: container.stdin == Some(true),
        tty: container.tty == Some(true),
        binds: binds(kubelet, pod, container).await?,
        extra_hosts: host_aliases(pod),
        memory_limit,
        nano_cpus,
        cpu_shares,
        security,
        labels,
    })
}

/// Refuses the fields of a container the agent does not honour yet.
fn refuse_unsupported(container: &Container) -> Result<(), Refusal> {
    let fields = [
        (container.volume_devices.is_some(), "volumeDevices"),
        (container.resize_policy.is_some(), "resizePolicy"),
        (
            container.restart_policy.is_some(),
            "restartPolicy (sidecar containers)",
        ),
    ];
    crate::probes::check(container)?;
    match fields.into_iter().find(|(set, _)| *set) {
        Some((_, field)) => Err(Refusal::Unsupported(format!(
            "{field} (container {:?})",
            container.name
        ))),
        None => Ok(()),
    }
}

/// Limits: memory in bytes, CPU in billionths; requests: CPU shares, as the kubelet
/// turns them into cgroup settings.
fn resources(container: &Container) -> Result<(i64, i64, i64), Refusal> {
    let resources = container.resources.clone().unwrap_or_default();
    let read = |map: &Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
                key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .map(|q| {
                berth_quantity::milli(&q.0).ok_or_else(|| {
                    Refusal::Invalid(format!("{key} quantity {:?} is not valid", q.0))
                })
            })
            .transpose()
    };
    let memory = read(&resources.limits, "memory")?.map_or(0, |m| (m / 1000) as i64);
    let cpu_limit = read(&resources.limits, "cpu")?.map_or(0, |m| (m * 1_000_000) as i64);
    let cpu_request = read(&resources.requests, "cpu")?
        .or(read(&resources.limits, "cpu")?)
        .map_or(0, |m| ((m * 1024 / 1000) as i64).max(2));
    Ok((memory, cpu_limit, cpu_request))
}

/// The container's environment, as the kubelet makes it: the `kubernetes` Service's
/// variables (how in-cluster clients find the API), then `envFrom`, then `env`, each
/// with its source read.
async fn environment(
    kubelet: &Kubelet,
    pod: &Pod,
    sandbox: &PodSandbox,
    container: &Container,
) -> Result<Vec<(String, String)>, Refusal> {
    let namespace = pod.namespace().unwrap_or_default();
    let mut env: Vec<(String, String)> = api_service_env(kubelet.api_service);
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (object, optional) = if let Some(reference) = &source.config_map_ref {
            (
                (Source::ConfigMap, reference.name.as_str()),
                reference.optional,
            )
        } else if let Some(reference) = &source.secret_ref {
            (
                (Source::Secret, reference.name.as_str()),
                reference.optional,
            )
        } else {
            continue;
        };
        let optional = optional == Some(true);
        match object_data(kubelet, &namespace, object).await {
            Ok(data) => env.extend(
                data.into_iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), text(v))),
            ),
            Err(missing) if !optional => return Err(missing),
            Err(_) => {}
        }
    }
    for variable in container.env.iter().flatten() {
        if let Some(value) = value_of(kubelet, (pod, &container.name), sandbox, variable).await? {
            env.retain(|(k, _)| *k != variable.name);
            env.push((variable.name.clone(), expand(&value, &env)));
        }
    }
    Ok(env)
}

/// The variables of the `kubernetes` Service at `address`, port 443, in the docker-links
/// form the kubelet gives every container.
fn api_service_env(address: std::net::Ipv4Addr) -> Vec<(String, String)> {
    let url = format!("tcp://{address}:443");
    [
        ("KUBERNETES_SERVICE_HOST", address.to_string()),
        ("KUBERNETES_SERVICE_PORT", "443".into()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443".into()),
        ("KUBERNETES_PORT", url.clone()),
        ("KUBERNETES_PORT_443_TCP", url),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp".into()),
        ("KUBERNETES_PORT_443_TCP_PORT", "443".into()),
        ("KUBERNETES_PORT_443_TCP_ADDR", address.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `$(NAME)` references to variables defined before, as the kubelet expands them; `$$`
/// escapes a dollar.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[at..at + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// One variable's value; None for an optional one whose source is missing.
async fn value_of(
    kubelet: &Kubelet,
    (pod, container): (&Pod, &str),
    sandbox: &PodSandbox,
    variable: &EnvVar,
) -> Result<Option<String>, Refusal> {
    let Some(source) = &variable.value_from else {
        return Ok(Some(variable.value.clone().unwrap_or_default()));
    };
    let namespace = pod.namespace().unwrap_or_default();
    let keyed = if let Some(key) = &source.config_map_key_ref {
        Some((Source::ConfigMap, &key.name, &key.key, key.optional))
    } else {
        source
            .secret_key_ref
            .as_ref()
            .map(|key| (Source::Secret, &key.name, &key.key, key.optional))
    };
    if let Some((kind, name, key, optional)) = keyed {
        let optional = optional == Some(true);
        let data = object_data(kubelet, &namespace, (kind, name)).await;
        let kind = kind.word();
        return match data.map(|d| d.get(key.as_str()).cloned()) {
            Ok(Some(value)) => Ok(Some(text(value))),
            _ if optional => Ok(None),
            Ok(None) => Err(Refusal::Missing(format!(
                "couldn't find key {key} in {kind} {namespace}/{name}"
            ))),
            Err(missing) => Err(missing),
        };
    }
    if let Some(field) = &source.field_ref {
        return field_value(
            pod,
            sandbox,
            &kubelet.node.ip.to_string(),
            &field.field_path,
        )
        .map(Some);
    }
    if let Some(selector) = &source.resource_field_ref {
        let value = crate::downward::resource_value(pod, container, selector, &kubelet.data_dir())?;
        return Ok(Some(value));
    }
    Err(Refusal::Invalid(format!(
        "env {:?}: valueFrom names no source",
        variable.name
    )))
}

/// A pod field of the downward API.
fn field_value(
    pod: &Pod,
    sandbox: &PodSandbox,
    host_ip: &str,
    path: &str,
) -> Result<String, Refusal> {
    let spec = pod.spec.clone().unwrap_or_default();
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    if let Some(value) = keyed("metadata.labels['", &pod.metadata.labels)
        .or_else(|| keyed("metadata.annotations['", &pod.metadata.annotations))
    {
        return Ok(value);
    }
    let pod_ip = sandbox
        .ip()
        .map_or_else(|| host_ip.to_string(), |ip| ip.to_string());
    Ok(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip,
        other => {
            return Err(Refusal::Invalid(format!(
                "unsupported fieldRef fieldPath {other:?}"
            )));
        }
    })
}

/// Where a pod's configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    /// The kind as the kubelet's messages name it.
    fn word(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }
}

/// The keys of the configMap or secret `name`, as bytes (a configMap's `binaryData`
/// and a secret's values need not be text); the kubelet's words when it is missing.
async fn object_data(
    kubelet: &Kubelet,
    namespace: &str,
    (source, name): (Source, &str),
) -> Result<BTreeMap<String, Vec<u8>>, Refusal> {
    let missing = |error: Option<kube::Error>| {
        let word = source.word();
        Refusal::Missing(match error {
            None => format!("{word} \"{name}\" not found"),
            Some(error) => format!("{word} \"{name}\": {error}"),
        })
    };
    match source {
        Source::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(kubelet.client.clone(), namespace);
            let map = api.get_opt(name).await.map_err(|e| missing(Some(e)))?;
            let map = map.ok_or_else(|| missing(None))?;
            let text = map
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()));
            let binary = map
                .binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0));
            Ok(text.chain(binary).collect())
        }
        Source::Secret => {
            let api: Api<Secret> = Api::namespaced(kubelet.client.clone(), namespace);
            let secret = api.get_opt(name).await.map_err(|e| missing(Some(e)))?;
            let secret = secret.ok_or_else(|| missing(None))?;
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0));
            let text = secret.string_data.unwrap_or_default().into_iter();
            Ok(data.chain(text.map(|(k, v)| (k, v.into_bytes()))).collect())
        }
    }
}

/// A value of a configMap or secret as an environment variable's.
fn text(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The container's volume mounts as host directories bound in.
async fn binds(
    kubelet: &Kubelet,
    pod: &Pod,
    container: &Container,
) -> Result<Vec<(PathBuf, String, bool)>, Refusal> {
    let spec = pod.spec.clone().unwrap_or_default();
    let volumes = spec.volumes.unwrap_or_default();
    let dir = kubelet.volumes_dir(&pod.uid().unwrap_or_default());
    let mut binds = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| {
                Refusal::Invalid(format!(
                    "volume mount {:?}: no volume of that name",
                    mount.name
                ))
            })?;
        let mut source = volume_source(kubelet, pod, volume, &dir).await?;
        if let Some(sub_path) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub_path.starts_with('/') || sub_path.split('/').any(|p| p == "..") {
                return Err(Refusal::Invalid(format!(
                    "subPath {sub_path:?} must stay inside its volume"
                )));
            }
            source = source.join(sub_path);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(|e| io_refusal(&source, &e))?;
            }
        }
        binds.push((
            source,
            mount.mount_path.clone(),
            mount.read_only == Some(true),
        ));
    }
    Ok(binds)
}

fn io_refusal(path: &Path, error: &std::io::Error) -> Refusal {
    Refusal::Invalid(format!("{}: {error}", path.display()))
}

/// The host directory (or file) that holds `volume`, made or filled as its kind says.
async fn volume_source(
    kubelet: &Kubelet,
    pod: &Pod,
    volume: &Volume,
    dir: &Path,
) -> Result<PathBuf, Refusal> {
    let own = dir.join(&volume.name);
    if let Some(empty) = &volume.empty_dir {
        let size = empty.size_limit.as_ref().map(|q| q.0.clone());
        match empty.medium.as_deref().unwrap_or_default() {
            "" => std::fs::create_dir_all(&own).map_err(|e| io_refusal(&own, &e))?,
            "Memory" => memory_backed(&own, size.as_deref())?,
            other => {
                return Err(Refusal::Unsupported(format!(
                    "emptyDir medium {other:?} (volume {:?})",
                    volume.name
                )));
            }
        }
        // As the kubelet makes them: writable by all, or by the pod's fsGroup.
        let fs_group = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|c| c.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        share_with_group(&own, fs_group)?;
        return Ok(own);
    }
    let mount_failed = |refusal: Refusal| match refusal {
        Refusal::Unmountable(why) => Refusal::Unmountable(format!(
            "MountVolume.SetUp failed for volume {:?} : {why}",
            volume.name
        )),
        other => other,
    };
    if let Some(host) = &volume.host_path {
        return host_path(&host.path, host.type_.as_deref().unwrap_or("")).map_err(mount_failed);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        let namespace = pod.namespace().unwrap_or_default();
        return claimed(kubelet, &namespace, &claim.claim_name)
            .await
            .map_err(mount_failed);
    }
    if fill_from_object(kubelet, pod, volume, &own).await? {
        return Ok(own);
    }
    Err(Refusal::Unsupported(format!(
        "this kind of volume (volume {:?}): emptyDir, hostPath, configMap, secret and persistentVolumeClaim are supported",
        volume.name
    )))
}

/// The directory of the volume `claim` is bound to (a local one: hostPath or local),
/// made when its type says so.
async fn claimed(kubelet: &Kubelet, namespace: &str, claim: &str) -> Result<PathBuf, Refusal> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(kubelet.client.clone(), namespace);
    let unreadable =
        |e: kube::Error| Refusal::Unmountable(format!("persistentvolumeclaim {claim:?}: {e}"));
    let found = claims
        .get_opt(claim)
        .await
        .map_err(unreadable)?
        .ok_or_else(|| {
            Refusal::Unmountable(format!("persistentvolumeclaim {claim:?} not found"))
        })?;
    let volume = found
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Refusal::Unmountable(format!("persistentvolumeclaim {claim:?} is not bound yet"))
        })?;
    let volumes: Api<PersistentVolume> = Api::all(kubelet.client.clone());
    let spec = volumes
        .get(&volume)
        .await
        .map_err(unreadable)?
        .spec
        .unwrap_or_default();
    if let Some(host) = spec.host_path {
        return host_path(&host.path, host.type_.as_deref().unwrap_or(""));
    }
    if let Some(local) = spec.local {
        return host_path(&local.path, "Directory");
    }
    Err(Refusal::Unsupported(format!(
        "persistentVolume {volume:?} of this kind: hostPath and local volumes are supported"
    )))
}

/// Rewrites the pod's configMap, secret and projected volumes (tokens too) from their
/// sources as they are now, in place: a container sees a changed key's new content, as
/// with the kubelet.
pub async fn refresh_volumes(kubelet: &Kubelet, pod: &Pod) -> Result<(), Refusal> {
    let dir = kubelet.volumes_dir(&pod.uid().unwrap_or_default());
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.clone());
    for volume in volumes.iter().flatten() {
        let own = dir.join(&volume.name);
        if own.is_dir() {
            fill_from_object(kubelet, pod, volume, &own).await?;
        }
    }
    Ok(())
}

/// Fills `own` with the files of a configMap, secret, downwardAPI or projected
/// `volume`; false when it is none of those.
async fn fill_from_object(
    kubelet: &Kubelet,
    pod: &Pod,
    volume: &Volume,
    own: &Path,
) -> Result<bool, Refusal> {
    if let Some(source) = &volume.downward_api {
        let items = source.items.as_deref().unwrap_or_default();
        let files = crate::downward::files(pod, items, &kubelet.data_dir())?;
        write_entries(own, files, source.default_mode.unwrap_or(0o644))?;
        return Ok(true);
    }
    if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.unwrap_or(0o644);
        for source in projected.sources.iter().flatten() {
            fill_projected(kubelet, pod, source, (own, mode)).await?;
        }
        return Ok(true);
    }
    let namespace = pod.namespace().unwrap_or_default();
    let (object, items, mode, optional) = if let Some(source) = &volume.config_map {
        let object = (Source::ConfigMap, source.name.as_str());
        (object, &source.items, source.default_mode, source.optional)
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let object = (Source::Secret, name);
        (object, &source.items, source.default_mode, source.optional)
    } else {
        return Ok(false);
    };
    let data = match object_data(kubelet, &namespace, object).await {
        Ok(data) => data,
        Err(_) if optional == Some(true) => BTreeMap::new(),
        Err(missing) => return Err(missing),
    };
    write_files(own, &data, items.as_deref(), mode.unwrap_or(0o644))?;
    Ok(true)
}

/// Writes one source of a projected volume into `own`.
async fn fill_projected(
    kubelet: &Kubelet,
    pod: &Pod,
    source: &k8s_openapi::api::core::v1::VolumeProjection,
    (own, mode): (&Path, i32),
) -> Result<(), Refusal> {
    let namespace = pod.namespace().unwrap_or_default();
    let (object, items, optional) = if let Some(map) = &source.config_map {
        (
            (Source::ConfigMap, map.name.as_str()),
            &map.items,
            map.optional,
        )
    } else if let Some(secret) = &source.secret {
        (
            (Source::Secret, secret.name.as_str()),
            &secret.items,
            secret.optional,
        )
    } else if let Some(downward) = &source.downward_api {
        let items = downward.items.as_deref().unwrap_or_default();
        let files = crate::downward::files(pod, items, &kubelet.data_dir())?;
        return write_entries(own, files, mode);
    } else if let Some(projection) = &source.service_account_token {
        let token = service_account_token(kubelet, pod, projection).await?;
        return write_entries(own, vec![(projection.path.clone(), token, None)], mode);
    } else {
        return Err(Refusal::Unsupported(
            "this kind of projected volume source: configMap, secret, downwardAPI and serviceAccountToken are supported"
                .into(),
        ));
    };
    let data = match object_data(kubelet, &namespace, object).await {
        Ok(data) => data,
        Err(_) if optional == Some(true) => return Ok(()),
        Err(missing) => return Err(missing),
    };
    write_files(own, &data, items.as_deref(), mode)
}

/// How long a projected token lives when its projection does not say (the API's
/// default for `serviceAccountToken.expirationSeconds`).
const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// A token of the pod's account bound to the pod, from the TokenRequest API, for the
/// projection's audience and lifetime (an hour unless it says).
async fn service_account_token(
    kubelet: &Kubelet,
    pod: &Pod,
    projection: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
) -> Result<Vec<u8>, Refusal> {
    use k8s_openapi::api::authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec,
    };
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection.audience.iter().cloned().collect(),
            expiration_seconds: Some(
                projection
                    .expiration_seconds
                    .unwrap_or(TOKEN_EXPIRATION_SECONDS),
            ),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..TokenRequest::default()
    };
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(kubelet.client.clone(), &pod.namespace().unwrap_or_default());
    let issued = accounts
        .create_token_request(&account, &kube::api::PostParams::default(), &request)
        .await
        .map_err(|e| {
            Refusal::Invalid(format!(
                "failed to fetch token for service account {account:?}: {e}"
            ))
        })?;
    let token = issued.status.map(|s| s.token).unwrap_or_default();
    Ok(token.into_bytes())
}

/// How often the pod's projected tokens are fetched again: when 80 % of the shortest
/// one's life has passed, as the kubelet refreshes them; None without any.
pub fn token_refresh_interval(pod: &Pod) -> Option<std::time::Duration> {
    let volumes = pod.spec.as_ref()?.volumes.as_ref()?;
    volumes
        .iter()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| t.expiration_seconds.unwrap_or(TOKEN_EXPIRATION_SECONDS))
        .min()
        .map(|seconds| std::time::Duration::from_secs(u64::try_from(seconds * 8 / 10).unwrap_or(0)))
}

/// A tmpfs at `dir` (of `size`, a quantity, when given), unless one is there already
/// (an agent re-adopting its pods).
fn memory_backed(dir: &Path, size: Option<&str>) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir).map_err(|e| io_refusal(dir, &e))?;
    let device = |path: &Path| std::fs::metadata(path).map(|m| m.dev()).ok();
    if dir.parent().and_then(device) != device(dir) {
        return Ok(());
    }
    let options = match size {
        Some(size) => {
            let bytes = berth_quantity::milli(size)
                .filter(|m| *m > 0)
                .ok_or_else(|| Refusal::Invalid(format!("emptyDir sizeLimit {size:?}")))?;
            format!("size={}", bytes / 1000)
        }
        None => String::new(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| Refusal::Unmountable(format!("mount a tmpfs at {}: {e}", dir.display())))
}

/// Unmounts every mount under `dir` (a pod's memory-backed volumes), deepest first.
pub(crate) fn unmount_below(dir: &Path) {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Opens an emptyDir to everyone (mode 0777), or to `fs_group` (its group, set-group-id
/// so that what is made in it is the group's too).
fn share_with_group(dir: &Path, fs_group: Option<u32>) -> Result<(), Refusal> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match fs_group {
        Some(gid) => {
            std::os::unix::fs::chown(dir, None, Some(gid)).map_err(|e| io_refusal(dir, &e))?;
            0o2777
        }
        None => 0o777,
    };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_refusal(dir, &e))
}

/// Writes a configMap's or secret's keys as files (only `items`, at their paths, when
/// given).
fn write_files(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
    mode: i32,
) -> Result<(), Refusal> {
    let files: Vec<VolumeFile> = match items {
        Some(items) => items
            .iter()
            .map(|item| {
                let value = data.get(&item.key).cloned().ok_or_else(|| {
                    Refusal::Missing(format!("configmap or secret has no key {:?}", item.key))
                })?;
                Ok((item.path.clone(), value, item.mode))
            })
            .collect::<Result<_, Refusal>>()?,
        None => data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), None))
            .collect(),
    };
    write_entries(dir, files, mode)
}

/// Writes files (path in the volume, content, mode — `mode` when it has none) into
/// `dir`, each replaced whole so that a reader sees old content or new.
fn write_entries(dir: &Path, files: Vec<VolumeFile>, mode: i32) -> Result<(), Refusal> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| io_refusal(dir, &e))?;
    for (path, value, own_mode) in files {
        let mode = own_mode.unwrap_or(mode);
        if path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(Refusal::Invalid(format!(
                "item path {path:?} must stay inside its volume"
            )));
        }
        let file = dir.join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_refusal(parent, &e))?;
        }
        if std::fs::read(&file).is_ok_and(|old| old == value) {
            continue;
        }
        // Written beside and renamed over: a reader sees the old content or the new.
        let fresh = file.with_file_name(format!(
            ".{}.new",
            file.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&fresh, value).map_err(|e| io_refusal(&fresh, &e))?;
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(mode as u32 & 0o777))
            .map_err(|e| io_refusal(&fresh, &e))?;
        std::fs::rename(&fresh, &file).map_err(|e| io_refusal(&file, &e))?;
    }
    Ok(())
}

/// A hostPath volume checked against its type, made for the `OrCreate` types.
fn host_path(path: &str, kind: &str) -> Result<PathBuf, Refusal> {
    use std::os::unix::fs::FileTypeExt;
    let target = PathBuf::from(path);
    let metadata = std::fs::metadata(&target);
    let wrong = |what: &str| {
        Refusal::Unmountable(format!("hostPath type check failed: {path} is not {what}"))
    };
    match kind {
        "" => {}
        "DirectoryOrCreate" if metadata.is_err() => {
            std::fs::create_dir_all(&target).map_err(|e| io_refusal(&target, &e))?;
        }
        "FileOrCreate" if metadata.is_err() => {
            std::fs::File::create(&target).map_err(|e| io_refusal(&target, &e))?;
        }
        "Directory" | "DirectoryOrCreate" if !metadata.as_ref().is_ok_and(|m| m.is_dir()) => {
            return Err(wrong("a directory"));
        }
        "File" | "FileOrCreate" if !metadata.as_ref().is_ok_and(|m| m.is_file()) => {
            return Err(wrong("a file"));
        }
        "Socket" if !metadata.as_ref().is_ok_and(|m| m.file_type().is_socket()) => {
            return Err(wrong("a socket file"));
        }
        "CharDevice"
            if !metadata
                .as_ref()
                .is_ok_and(|m| m.file_type().is_char_device()) =>
        {
            return Err(wrong("a character device"));
        }
        "BlockDevice"
            if !metadata
                .as_ref()
                .is_ok_and(|m| m.file_type().is_block_device()) =>
        {
            return Err(wrong("a block device"));
        }
        "Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate" | "Socket" | "CharDevice"
        | "BlockDevice" => {}
        other => {
            return Err(Refusal::Invalid(format!(
                "hostPath type {other:?} is not valid"
            )));
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn dependent_variables_expand_as_the_kubelet_expands_them() {
        let env = vec![("A".to_string(), "one".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "one-$(B)-$(A)-$");
    }
}
