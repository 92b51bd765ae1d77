//! The compose-spec's model, each field in one normalised shape whatever form the file
//! used (a list or a map of environment variables, a string or a list of a command, the
//! short or long syntax of ports and volumes), so the rest of the program never looks at
//! YAML. Field names and meanings are the spec's.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A Compose project: services and the networks and volumes they use.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Project {
    /// The project's name (else the directory's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Obsolete, accepted and not used, as Compose v2 does.
    #[serde(default, skip_serializing)]
    pub version: Option<String>,
    /// The services, by name.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Networks the file declares (a `default` one is always there).
    #[serde(default, deserialize_with = "or_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Named volumes the file declares.
    #[serde(default, deserialize_with = "or_empty")]
    pub volumes: BTreeMap<String, Volume>,
}

/// One service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Service {
    /// The image to run (or to tag what `build` makes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How to build its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The command, over the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// The entrypoint, over the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Command>,
    /// Environment variables; a name without a value takes the caller's.
    #[serde(
        default,
        deserialize_with = "map_or_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment: BTreeMap<String, Option<String>>,
    /// Files of `KEY=value` lines, relative to the project directory.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env_file: Vec<String>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Mounts: named volumes, bind mounts, tmpfs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// The networks it joins (`default` when none).
    #[serde(
        default,
        deserialize_with = "names_or_map",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks: Vec<String>,
    /// Services to start first, and what "started" means for each.
    #[serde(
        default,
        deserialize_with = "dependencies",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub depends_on: BTreeMap<String, Dependency>,
    /// Its health check, over the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `no`, `always`, `on-failure[:N]` or `unless-stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Replicas and resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Container labels.
    #[serde(
        default,
        deserialize_with = "labels",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Profiles that enable it (always enabled when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// A fixed container name (one replica only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Allocate a terminal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Keep stdin open.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// What `compose watch` does when its files change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
}

/// `develop:`. A key of the spec Berth does not carry out (`initial_sync`, `exec`…) is
/// an error naming it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Develop {
    /// The rules, each for a path of the project.
    #[serde(default)]
    pub watch: Vec<WatchRule>,
}

/// One `develop.watch` rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRule {
    /// What a change does.
    pub action: WatchAction,
    /// The file or directory watched, relative to the project directory.
    pub path: String,
    /// Where in the container a sync puts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Paths under `path` left alone, in `.dockerignore` patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
}

/// A watch rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum WatchAction {
    /// Copy changed files into the running containers (and remove deleted ones).
    #[serde(rename = "sync")]
    Sync,
    /// Build the image again and recreate the containers.
    #[serde(rename = "rebuild")]
    Rebuild,
    /// Sync, then restart the containers.
    #[serde(rename = "sync+restart")]
    SyncRestart,
}

/// `build:` as a context path or in full.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Build {
    /// The context directory, relative to the project's.
    pub context: String,
    /// The Dockerfile, relative to the context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Build arguments.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    /// The stage to build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A command as a shell line or as words.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Command {
    /// Words, run as they are.
    Exec(Vec<String>),
    /// A line, split as a shell would (Compose splits it; it does not run a shell).
    Line(String),
}

impl Command {
    /// The words to run: a line split as a POSIX shell would split it (quotes and
    /// backslashes), as Compose does; None for a line with an unclosed quote.
    pub fn words(&self) -> Option<Vec<String>> {
        match self {
            Self::Exec(words) => Some(words.clone()),
            Self::Line(line) => shlex::split(line),
        }
    }
}

/// A published port in the long syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// The container's port.
    pub target: u16,
    /// The host's port (an ephemeral one when None).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u16>,
    /// The host address to listen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A mount in the long syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume's name or the host path (none for tmpfs and anonymous volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where in the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// What a dependency must reach before the dependent starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Dependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    #[serde(default = "started")]
    pub condition: String,
}

fn started() -> String {
    "service_started".into()
}

/// A health check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]`, `["NONE"]`, or a line (CMD-SHELL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Command>,
    /// Go durations: `30s`, `1m30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// How long one probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Failures in a row before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Grace after the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
    /// Turns the image's check off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// `deploy:`: the part a single host can honour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Deploy {
    /// How many containers of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Limits per container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Resources {
    /// `cpus` and `memory` a container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// `deploy.resources.limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Limits {
    /// CPUs, as `0.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// Memory, as `256M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A network the file declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Network {
    /// The driver (`bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Made outside the project: used, never created or removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

/// A named volume the file declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Volume {
    /// The driver (`local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Made outside the project.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

impl<'de> Deserialize<'de> for Build {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Context(String),
            Full {
                #[serde(default = "here")]
                context: String,
                #[serde(default)]
                dockerfile: Option<String>,
                #[serde(default, deserialize_with = "map_or_list")]
                args: BTreeMap<String, Option<String>>,
                #[serde(default)]
                target: Option<String>,
            },
        }
        fn here() -> String {
            ".".into()
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Context(context) => Build {
                context,
                ..Build::default()
            },
            Form::Full {
                context,
                dockerfile,
                args,
                target,
            } => Build {
                context,
                dockerfile,
                args,
                target,
            },
        })
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u16),
            Short(String),
            Long {
                target: u16,
                #[serde(default)]
                published: Option<PortNumber>,
                #[serde(default)]
                host_ip: Option<String>,
                #[serde(default = "tcp")]
                protocol: String,
            },
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum PortNumber {
            Number(u16),
            Text(String),
        }
        fn tcp() -> String {
            "tcp".into()
        }
        let port = match Form::deserialize(deserializer)? {
            Form::Number(target) => Port {
                target,
                published: None,
                host_ip: None,
                protocol: tcp(),
            },
            Form::Short(text) => short_port(&text).map_err(serde::de::Error::custom)?,
            Form::Long {
                target,
                published,
                host_ip,
                protocol,
            } => {
                let published = match published {
                    None => None,
                    Some(PortNumber::Number(n)) => Some(n),
                    Some(PortNumber::Text(t)) => Some(t.parse().map_err(|_| {
                        serde::de::Error::custom(format!("invalid published port {t:?}"))
                    })?),
                };
                Port {
                    target,
                    published,
                    host_ip,
                    protocol,
                }
            }
        };
        Ok(port)
    }
}

/// `[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]`; ranges are refused by name.
fn short_port(text: &str) -> Result<Port, String> {
    let (address, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    if address.contains('-') {
        return Err(format!("port ranges ({text}) are not supported yet"));
    }
    let parts: Vec<&str> = address.rsplitn(3, ':').collect();
    let number = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} in {text:?}"))
    };
    let target = number(parts[0])?;
    let published = parts.get(1).map(|p| number(p)).transpose()?;
    let host_ip = parts
        .get(2)
        .map(|ip| ip.trim_matches(['[', ']']).to_string());
    Ok(Port {
        target,
        published,
        host_ip,
        protocol: protocol.to_string(),
    })
}

impl<'de> Deserialize<'de> for Mount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Short(String),
            Long {
                #[serde(rename = "type")]
                kind: String,
                #[serde(default)]
                source: Option<String>,
                target: String,
                #[serde(default)]
                read_only: bool,
            },
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Short(text) => short_mount(&text),
            Form::Long {
                kind,
                source,
                target,
                read_only,
            } => Mount {
                kind,
                source,
                target,
                read_only,
            },
        })
    }
}

/// `[SOURCE:]TARGET[:MODE]`: a source that is a path (`.`, `/`, `~`) is a bind mount, a
/// name a named volume, none an anonymous volume.
fn short_mount(text: &str) -> Mount {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts[..] {
        [target] => (None, target, ""),
        [source, target] => (Some(source), target, ""),
        [source, target, mode, ..] => (Some(source), target, mode),
        [] => (None, "", ""),
    };
    let bind = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
    Mount {
        kind: if bind { "bind" } else { "volume" }.into(),
        source: source.map(str::to_string),
        target: target.to_string(),
        read_only: mode.split(',').any(|m| m == "ro"),
    }
}

/// A mapping or a list of `KEY=value` (or `KEY`, no value).
fn map_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Map(BTreeMap<String, Option<Scalar>>),
        List(Vec<String>),
    }
    Ok(match Form::deserialize(deserializer)? {
        Form::Map(map) => map
            .into_iter()
            .map(|(k, v)| (k, v.map(Scalar::into_string)))
            .collect(),
        Form::List(list) => list
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item, None),
            })
            .collect(),
    })
}

/// Labels: like the environment, a missing value being empty.
fn labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(map_or_list(deserializer)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A YAML scalar a string field also takes (`PORT: 80`, `DEBUG: true`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(serde_yaml_ng::Number),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Number(number) => number.to_string(),
            Self::Bool(flag) => flag.to_string(),
        }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Form::deserialize(deserializer)? {
        Form::One(one) => vec![one],
        Form::Many(many) => many,
    })
}

/// A list of names, or a map keyed by them (whose settings are not supported yet).
fn names_or_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Map(BTreeMap<String, Option<serde_yaml_ng::Mapping>>),
    }
    match Form::deserialize(deserializer)? {
        Form::List(list) => Ok(list),
        Form::Map(map) => {
            if let Some((name, _)) = map
                .iter()
                .find(|(_, v)| v.as_ref().is_some_and(|m| !m.is_empty()))
            {
                return Err(serde::de::Error::custom(format!(
                    "settings of network {name} in a service (aliases, addresses) are not supported yet"
                )));
            }
            Ok(map.into_keys().collect())
        }
    }
}

/// `depends_on` as a list of names or a map of conditions.
fn dependencies<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Dependency>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Map(BTreeMap<String, Dependency>),
    }
    Ok(match Form::deserialize(deserializer)? {
        Form::List(list) => list
            .into_iter()
            .map(|name| {
                (
                    name,
                    Dependency {
                        condition: started(),
                    },
                )
            })
            .collect(),
        Form::Map(map) => map,
    })
}

/// A map whose values may be empty (`networks: {front: }`).
fn or_empty<'de, D, T>(deserializer: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let map = BTreeMap::<String, Option<T>>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}
