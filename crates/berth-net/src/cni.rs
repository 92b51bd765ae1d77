//! The runtime's side of the Container Network Interface (CNI 1.0): a network's
//! configuration read from a directory as the kubelet and containerd read
//! `/etc/cni/net.d`, and its plugins run for ADD, CHECK and DEL exactly as the spec says —
//! each plugin a program found by its `type` in the plugin directories, given its
//! configuration on stdin (with the network's `name` and `cniVersion`, the runtime
//! arguments its `capabilities` ask for, and the previous result) and the `CNI_*`
//! variables, answering a result or an error on stdout.
//!
//! A plugin's own settings (a bridge's name, an IPAM block) are its wire format: they stay
//! JSON, passed through as written. What the runtime reads — the network's name and
//! version, the plugins' types and capabilities, the result's addresses — is typed.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Context, Error, Result};

/// The configuration versions whose plugins this runtime drives: 0.3.0 and later, whose
/// results share one shape.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Where Debian's containernetworking-plugins and the CNI project's releases put
/// their plugins, searched in this order by default.
pub const DEFAULT_PLUGIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// A network configuration list (a `.conflist`; a `.conf` of one plugin is read as a list
/// of that plugin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The version of the spec its plugins are driven at.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network's name, unique on the host.
    pub name: String,
    /// Skip CHECK for this network (`disableCheck`).
    #[serde(rename = "disableCheck", default, skip_serializing_if = "is_false")]
    pub disable_check: bool,
    /// The plugins, run in this order for ADD and CHECK, in reverse for DEL.
    pub plugins: Vec<PluginConfig>,
}

/// One plugin of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginConfig {
    /// The plugin's program name (`bridge`, `host-local`, `portmap`…).
    #[serde(rename = "type")]
    pub kind: String,
    /// The runtime arguments it asks for (`portMappings`, `ipRanges`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, bool>,
    /// Everything else: the plugin's own settings, as written.
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl NetworkConfig {
    /// The network the runtime brings a namespace's loopback up with, as containerd's
    /// CRI plugin does beside the pod network.
    pub fn loopback() -> Self {
        Self {
            cni_version: "1.0.0".into(),
            name: "cni-loopback".into(),
            disable_check: false,
            plugins: vec![PluginConfig {
                kind: "loopback".into(),
                capabilities: BTreeMap::new(),
                settings: Map::new(),
            }],
        }
    }

    /// Reads a configuration file's text: a list, or a single plugin's configuration.
    pub fn parse(text: &str) -> Result<Self> {
        let mut object: Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("not a CNI configuration: {e}")))?;
        let config = if object.contains_key("plugins") {
            serde_json::from_value(Value::Object(object))
                .map_err(|e| Error::Invalid(format!("not a CNI configuration list: {e}")))?
        } else {
            let field = |object: &mut Map<String, Value>, name: &str| match object.remove(name) {
                Some(Value::String(text)) => Ok(text),
                _ => Err(Error::Invalid(format!(
                    "the CNI configuration has no {name:?} string"
                ))),
            };
            let cni_version = field(&mut object, "cniVersion")?;
            let name = field(&mut object, "name")?;
            let plugin = serde_json::from_value(Value::Object(object))
                .map_err(|e| Error::Invalid(format!("not a CNI plugin configuration: {e}")))?;
            Self {
                cni_version,
                name,
                disable_check: false,
                plugins: vec![plugin],
            }
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if !SUPPORTED_VERSIONS.contains(&self.cni_version.as_str()) {
            return Err(Error::Invalid(format!(
                "CNI version {:?} of network {:?} is not supported (supported: {})",
                self.cni_version,
                self.name,
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        if self.name.is_empty() {
            return Err(Error::Invalid("the CNI network has no name".into()));
        }
        if self.plugins.is_empty() {
            return Err(Error::Invalid(format!(
                "the CNI network {:?} has no plugins",
                self.name
            )));
        }
        if let Some(plugin) = self
            .plugins
            .iter()
            .find(|p| p.kind.is_empty() || p.kind.contains('/') || p.kind.starts_with('.'))
        {
            return Err(Error::Invalid(format!(
                "the CNI network {:?} names a plugin type {:?} that is not a program name",
                self.name, plugin.kind
            )));
        }
        Ok(())
    }

    /// Whether a plugin of the network takes the runtime argument `capability`.
    pub fn supports(&self, capability: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.capabilities.get(capability) == Some(&true))
    }

    /// Whether its version has CHECK (0.4.0 and later) and it does not turn it off.
    fn checks(&self) -> bool {
        !self.disable_check && !matches!(self.cni_version.as_str(), "0.3.0" | "0.3.1")
    }
}

/// The network configuration a directory holds: its first `.conf`, `.conflist` or `.json`
/// file in lexical order, as the kubelet and containerd pick it; None when the directory
/// is missing or holds none. A first file that is not a valid configuration is an error
/// naming it, never skipped.
pub fn load_dir(dir: &Path) -> Result<Option<(PathBuf, NetworkConfig)>> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other.or_os(|| format!("read {}", dir.display()))?,
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "conf" || e == "conflist" || e == "json")
        })
        .collect();
    files.sort();
    let Some(first) = files.into_iter().next() else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&first).or_os(|| format!("read {}", first.display()))?;
    let config = NetworkConfig::parse(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", first.display())))?;
    Ok(Some((first, config)))
}

/// What a namespace is attached with: the same for its ADD, CHECK and DEL, so it is kept
/// with the attachment's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container (or pod sandbox) id (`CNI_CONTAINERID`).
    pub container_id: String,
    /// The network namespace's path (`CNI_NETNS`).
    pub netns: PathBuf,
    /// The interface made inside (`CNI_IFNAME`).
    pub ifname: String,
    /// `CNI_ARGS` pairs (the kubelet's `K8S_POD_NAME`…), after `IgnoreUnknown=1`.
    pub args: Vec<(String, String)>,
    /// The runtime arguments, given to the plugins whose capabilities ask for them.
    pub runtime_config: RuntimeConfig,
}

/// The runtime arguments of the capabilities the runtime knows ("conventions" of CNI).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// `portMappings`: host ports (the portmap plugin publishes them).
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
    /// `ipRanges`: the ranges to allocate from (host-local's), the node's pod range.
    #[serde(rename = "ipRanges", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<Vec<IpRange>>,
}

/// A host port of the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The port on the host.
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    /// The port in the namespace.
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The host address; every one when empty.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// An address range of the `ipRanges` capability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpRange {
    /// The subnet.
    pub subnet: IpNet,
}

/// What an ADD made (CNI's "result"): the interfaces, addresses, routes and DNS settings.
/// Passed back to the plugins as `prevResult`, so what this runtime does not read is kept
/// as the plugins wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The version the result is written at.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The interfaces made, on the host and in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Value>,
    /// The addresses given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Everything else (`routes`, `dns`…).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// An address an ADD gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    /// The gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The rest (`interface`, `version` before 1.0).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Outcome {
    /// The first IPv4 address given, the pod's address.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.ips.iter().find_map(|ip| match ip.address.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
    }

    /// The name servers the result gives (`dns.nameservers`), if any.
    pub fn nameservers(&self) -> Vec<String> {
        self.rest
            .get("dns")
            .and_then(|dns| dns.get("nameservers"))
            .and_then(Value::as_array)
            .map(|servers| {
                servers
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The directories plugins are looked for in (`CNI_PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugins {
    dirs: Vec<PathBuf>,
}

impl Default for Plugins {
    fn default() -> Self {
        Self::new(DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect())
    }
}

/// One of CNI's three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Add,
    Check,
    Del,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Check => "CHECK",
            Self::Del => "DEL",
        }
    }
}

impl Plugins {
    /// Plugins from `dirs`, searched in order.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// Attaches the namespace: ADD through every plugin in order, each given the one
    /// before's result; the last one's is the attachment's. When a plugin fails, the
    /// caller should DEL what the ones before it made.
    pub fn add(&self, network: &NetworkConfig, attachment: &Attachment) -> Result<Outcome> {
        let mut previous: Option<Outcome> = None;
        for plugin in &network.plugins {
            let output = self.invoke(
                Operation::Add,
                network,
                plugin,
                attachment,
                previous.as_ref(),
            )?;
            let outcome: Outcome = serde_json::from_slice(&output).map_err(|e| {
                plugin_error(
                    plugin,
                    Operation::Add,
                    format!("its result is not CNI's: {e}"),
                )
            })?;
            previous = Some(outcome);
        }
        previous.ok_or_else(|| {
            Error::Invalid(format!("the CNI network {:?} has no plugins", network.name))
        })
    }

    /// Checks that the attachment is still as ADD made it: CHECK through every plugin in
    /// order with ADD's result. Networks older than 0.4.0, or with `disableCheck`, pass.
    pub fn check(
        &self,
        network: &NetworkConfig,
        attachment: &Attachment,
        outcome: &Outcome,
    ) -> Result<()> {
        if !network.checks() {
            return Ok(());
        }
        for plugin in &network.plugins {
            self.invoke(Operation::Check, network, plugin, attachment, Some(outcome))?;
        }
        Ok(())
    }

    /// Detaches the namespace: DEL through every plugin in reverse order, with ADD's
    /// result when there was one. Plugins treat what is already gone as done.
    pub fn del(
        &self,
        network: &NetworkConfig,
        attachment: &Attachment,
        outcome: Option<&Outcome>,
    ) -> Result<()> {
        for plugin in network.plugins.iter().rev() {
            self.invoke(Operation::Del, network, plugin, attachment, outcome)?;
        }
        Ok(())
    }

    /// The program of a plugin type: the first in the plugin directories.
    fn find(&self, kind: &str) -> Result<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join(kind))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "failed to find CNI plugin {kind:?} in path [{}]",
                    self.search_path()
                ))
            })
    }

    fn search_path(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs one plugin for one operation and returns what it printed.
    fn invoke(
        &self,
        operation: Operation,
        network: &NetworkConfig,
        plugin: &PluginConfig,
        attachment: &Attachment,
        previous: Option<&Outcome>,
    ) -> Result<Vec<u8>> {
        let program = self.find(&plugin.kind)?;
        let input = plugin_input(network, plugin, attachment, previous);
        let args: String = std::iter::once("IgnoreUnknown=1".to_string())
            .chain(attachment.args.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(";");
        let mut child = Command::new(&program)
            .env("CNI_COMMAND", operation.name())
            .env("CNI_CONTAINERID", &attachment.container_id)
            .env("CNI_NETNS", &attachment.netns)
            .env("CNI_IFNAME", &attachment.ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", self.search_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .or_os(|| format!("run the CNI plugin {}", program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin that exits without reading its input fails below on its own.
            let _ = stdin.write_all(&input);
        }
        let output = child
            .wait_with_output()
            .or_os(|| format!("wait for the CNI plugin {}", program.display()))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(plugin_error(
            plugin,
            operation,
            failure_message(&output.stdout, &output.stderr, output.status),
        ))
    }
}

/// A plugin's stdin: its configuration with the network's name and version, the runtime
/// arguments its capabilities ask for and the previous result.
fn plugin_input(
    network: &NetworkConfig,
    plugin: &PluginConfig,
    attachment: &Attachment,
    previous: Option<&Outcome>,
) -> Vec<u8> {
    let mut config = plugin.settings.clone();
    config.insert("cniVersion".into(), network.cni_version.clone().into());
    config.insert("name".into(), network.name.clone().into());
    config.insert("type".into(), plugin.kind.clone().into());
    if !plugin.capabilities.is_empty() {
        config.insert(
            "capabilities".into(),
            serde_json::to_value(&plugin.capabilities).unwrap_or_default(),
        );
    }
    let offered = match serde_json::to_value(&attachment.runtime_config) {
        Ok(Value::Object(offered)) => offered,
        _ => Map::new(),
    };
    let runtime_config: Map<String, Value> = offered
        .into_iter()
        .filter(|(capability, _)| plugin.capabilities.get(capability) == Some(&true))
        .collect();
    if !runtime_config.is_empty() {
        config.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    if let Some(previous) = previous {
        config.insert(
            "prevResult".into(),
            serde_json::to_value(previous).unwrap_or_default(),
        );
    }
    serde_json::to_vec(&config).unwrap_or_default()
}

/// A failed plugin's words: the `msg` (and `details`) of the CNI error it printed, else
/// what it wrote to stderr, else its exit status.
fn failure_message(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    #[derive(Deserialize)]
    struct CniError {
        #[serde(default)]
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    if let Ok(error) = serde_json::from_slice::<CniError>(stdout)
        && !error.msg.is_empty()
    {
        let details = if error.details.is_empty() {
            String::new()
        } else {
            format!(": {}", error.details)
        };
        return format!("{}{details} (code {})", error.msg, error.code);
    }
    let stderr = String::from_utf8_lossy(stderr);
    match stderr.trim() {
        "" => format!("it exited with {status}"),
        words => words.to_string(),
    }
}

fn plugin_error(plugin: &PluginConfig, operation: Operation, message: String) -> Error {
    Error::Cni {
        plugin: plugin.kind.clone(),
        operation: operation.name(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_plugin_configuration_is_a_list_of_one() {
        let config = NetworkConfig::parse(
            r#"{"cniVersion":"1.0.0","name":"mynet","type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}}"#,
        )
        .expect("test input");
        assert_eq!(config.name, "mynet");
        assert_eq!(config.plugins.len(), 1);
        assert_eq!(config.plugins[0].kind, "bridge");
        assert_eq!(config.plugins[0].settings["bridge"], "cni0");
    }

    #[test]
    fn unsupported_versions_and_odd_plugin_types_are_refused_by_name() {
        let old = NetworkConfig::parse(r#"{"cniVersion":"0.2.0","name":"n","type":"bridge"}"#);
        assert!(old.unwrap_err().to_string().contains("\"0.2.0\""));
        let path = NetworkConfig::parse(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bin/sh"}]}"#,
        );
        assert!(path.unwrap_err().to_string().contains("../bin/sh"));
        let empty = NetworkConfig::parse(r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#);
        assert!(empty.unwrap_err().to_string().contains("no plugins"));
    }

    #[test]
    fn runtime_arguments_go_only_to_plugins_that_ask_and_previous_results_follow() {
        let config = NetworkConfig::parse(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"bridge","capabilities":{"ipRanges":true}},
                {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}"#,
        )
        .expect("test input");
        let attachment = Attachment {
            runtime_config: RuntimeConfig {
                port_mappings: vec![PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                    host_ip: String::new(),
                }],
                ip_ranges: vec![vec![IpRange {
                    subnet: "10.42.0.0/24".parse().expect("test input"),
                }]],
            },
            ..Attachment::default()
        };
        let bridge: Value = serde_json::from_slice(&plugin_input(
            &config,
            &config.plugins[0],
            &attachment,
            None,
        ))
        .expect("test input");
        assert_eq!(bridge["name"], "n");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert_eq!(
            bridge["runtimeConfig"],
            serde_json::json!({"ipRanges": [[{"subnet": "10.42.0.0/24"}]]})
        );
        let previous: Outcome = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.42.0.5/24","gateway":"10.42.0.1","interface":1}],"dns":{}}"#,
        )
        .expect("test input");
        assert_eq!(
            previous.ipv4(),
            Some("10.42.0.5".parse().expect("test input"))
        );
        let portmap: Value = serde_json::from_slice(&plugin_input(
            &config,
            &config.plugins[1],
            &attachment,
            Some(&previous),
        ))
        .expect("test input");
        assert_eq!(portmap["snat"], true);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0]["hostPort"],
            8080
        );
        assert!(portmap["runtimeConfig"].get("ipRanges").is_none());
        assert_eq!(portmap["prevResult"]["ips"][0]["interface"], 1);
        assert_eq!(portmap["prevResult"]["ips"][0]["address"], "10.42.0.5/24");
    }

    #[test]
    fn a_plugins_cni_error_is_its_message() {
        let status = std::process::Command::new("false")
            .status()
            .expect("test input");
        let words = failure_message(
            br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid network config","details":"no subnet"}"#,
            b"",
            status,
        );
        assert_eq!(words, "invalid network config: no subnet (code 7)");
        assert_eq!(failure_message(b"", b" boom \n", status), "boom");
    }
}
