//! A Compose file into a [`Project`]: found as `docker compose` finds it, interpolated
//! from the environment and the project's `.env`, read into the typed model, and checked
//! — every service has an image or a build, what it depends on exists and no dependency
//! loops back, what it joins and mounts is declared. A key of the compose-spec that Berth
//! does not carry out yet is an error naming it; a key that is not the spec's at all is a
//! warning, as the issue asks; `x-` extensions are the file's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::interpolate::{dotenv, interpolate};
use crate::model::Project;

/// The file names looked for, in `docker compose`'s order.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Service keys of the compose-spec that Berth refuses until it carries them out.
const NOT_YET: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "configs",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "provider",
    "pull_policy",
    "read_only",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "ulimits",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

/// Top-level keys of the compose-spec that Berth refuses until it carries them out.
const NOT_YET_TOP: &[&str] = &["configs", "secrets", "include", "models"];

/// Why a Compose file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// No file, or one that cannot be read.
    #[error("{0}")]
    File(String),
    /// The file is not valid YAML or not the spec's shape.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong, with the line when YAML knows it.
        message: String,
    },
}

/// A project as loaded, with what the file said that Berth only warns about.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The project.
    pub project: Project,
    /// Its name: the file's `name`, else the directory's, as Compose makes it.
    pub name: String,
    /// The directory relative paths start from.
    pub dir: PathBuf,
    /// Keys that are not the compose-spec's, named.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// Keeps the services the `profiles` enable (with `*`, all of them) and those without
    /// profiles, which are always on, as Compose does; an enabled service that depends on
    /// one left out is an error, as Compose's.
    pub fn activate(&mut self, profiles: &[String]) -> Result<(), ComposeError> {
        let all = profiles.iter().any(|p| p == "*");
        let active = |service: &crate::Service| {
            all || service.profiles.is_empty()
                || service.profiles.iter().any(|p| profiles.contains(p))
        };
        self.project.services.retain(|_, service| active(service));
        for (name, service) in &self.project.services {
            if let Some(missing) = service
                .depends_on
                .keys()
                .find(|d| !self.project.services.contains_key(*d))
            {
                return Err(ComposeError::Invalid {
                    file: self.name.clone(),
                    message: format!(
                        "service {name:?} depends on undefined service {missing:?}: its profiles are not enabled"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The Compose file `file` names, or the first of [`FILE_NAMES`] in `dir`.
pub fn find(file: Option<&Path>, dir: &Path) -> Result<PathBuf, ComposeError> {
    if let Some(file) = file {
        return Ok(file.to_path_buf());
    }
    FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            ComposeError::File(format!(
                "no configuration file provided: not found (looked for {} in {})",
                FILE_NAMES.join(", "),
                dir.display()
            ))
        })
}

/// Loads `file`, with variables from `environment` and then the project's `.env`.
pub fn load(
    file: &Path,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ComposeError> {
    let shown = file.display().to_string();
    let invalid = |message: String| ComposeError::Invalid {
        file: shown.clone(),
        message,
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| ComposeError::File(format!("{shown}: {e}")))?;
    let dir = file
        .canonicalize()
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let dotenv: BTreeMap<String, String> = std::fs::read_to_string(dir.join(".env"))
        .map(|text| dotenv(&text).into_iter().collect())
        .unwrap_or_default();
    let lookup = |name: &str| environment(name).or_else(|| dotenv.get(name).cloned());
    let mut document: Value = serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    interpolate_values(&mut document, &lookup).map_err(invalid)?;
    let mut ignored = Vec::new();
    let project: Project =
        serde_ignored::deserialize(document, |path| ignored.push(path.to_string()))
            .map_err(|e| invalid(e.to_string()))?;
    let warnings = classify(&ignored).map_err(invalid)?;
    check(&project).map_err(invalid)?;
    let name = project.name.clone().unwrap_or_else(|| project_name(&dir));
    Ok(Loaded {
        project,
        name,
        dir,
        warnings,
    })
}

/// Interpolates every string value (not keys) of the document.
fn interpolate_values(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        Value::String(text) => {
            *text = interpolate(text, lookup).map_err(|e| e.to_string())?;
        }
        Value::Sequence(items) => {
            for item in items {
                interpolate_values(item, lookup)?;
            }
        }
        Value::Mapping(map) => {
            for (_, item) in map.iter_mut() {
                interpolate_values(item, lookup)?;
            }
        }
        Value::Tagged(tagged) => interpolate_values(&mut tagged.value, lookup)?,
        _ => {}
    }
    Ok(())
}

/// Errors for the spec's keys Berth does not carry out; warnings for keys not the spec's.
fn classify(ignored: &[String]) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    for path in ignored {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|p| p.starts_with("x-")) {
            continue;
        }
        let refused = match parts[..] {
            [top] => NOT_YET_TOP.contains(&top),
            ["services", _, key, ..] => NOT_YET.contains(&key),
            _ => false,
        };
        if refused {
            return Err(format!("{path} is not supported yet"));
        }
        warnings.push(format!(
            "unknown key {path}: not part of the compose-spec, ignored"
        ));
    }
    Ok(warnings)
}

/// The checks the model's types cannot make.
fn check(project: &Project) -> Result<(), String> {
    for (name, service) in &project.services {
        if service.image.is_none() && service.build.is_none() {
            return Err(format!(
                "service {name:?} has neither an image nor build context specified"
            ));
        }
        let rules = service.develop.iter().flat_map(|d| d.watch.iter());
        for (index, rule) in rules.enumerate() {
            let at = format!("services.{name}.develop.watch[{index}]");
            if rule.action != crate::WatchAction::Rebuild && rule.target.is_none() {
                return Err(format!("{at}: a sync needs a target"));
            }
            if rule.action == crate::WatchAction::Rebuild && service.build.is_none() {
                return Err(format!(
                    "{at}: a rebuild needs the service to have a build section"
                ));
            }
        }
        let replicas = service
            .deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .unwrap_or(1);
        if service.container_name.is_some() && replicas > 1 {
            return Err(format!(
                "services.deploy.replicas: can't set container_name and {name} as container name must be unique"
            ));
        }
        for dependency in service.depends_on.keys() {
            if !project.services.contains_key(dependency) {
                return Err(format!(
                    "service {name:?} depends on undefined service {dependency:?}"
                ));
            }
        }
        for network in &service.networks {
            if network != "default" && !project.networks.contains_key(network) {
                return Err(format!(
                    "service {name:?} refers to undefined network {network}"
                ));
            }
        }
        for mount in &service.volumes {
            let named = mount.kind == "volume" && mount.source.is_some();
            if let Some(volume) = mount.source.as_ref().filter(|_| named)
                && !project.volumes.contains_key(volume)
            {
                return Err(format!(
                    "service {name:?} refers to undefined volume {volume}"
                ));
            }
        }
        for dependency in service.depends_on.values() {
            let known = [
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ];
            if !known.contains(&dependency.condition.as_str()) {
                return Err(format!(
                    "service {name:?}: unknown depends_on condition {}",
                    dependency.condition
                ));
            }
        }
    }
    if let Some(cycle) = dependency_cycle(project) {
        return Err(format!("dependency cycle detected: {}", cycle.join(" -> ")));
    }
    Ok(())
}

/// A loop in `depends_on`, as the services along it, if there is one.
fn dependency_cycle(project: &Project) -> Option<Vec<String>> {
    fn visit<'a>(
        project: &'a Project,
        name: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        path.push(name);
        let dependencies = project.services.get(name).map(|s| &s.depends_on);
        for dependency in dependencies.into_iter().flat_map(|d| d.keys()) {
            if let Some(cycle) = visit(project, dependency, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    project
        .services
        .keys()
        .find_map(|name| visit(project, name, &mut Vec::new(), &mut done))
}

/// Compose's default project name: the directory's, lowercased, only `a-z0-9_-` kept.
fn project_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect()
}

/// The project as `docker compose config` prints it: the resolved model in YAML.
pub fn config_yaml(loaded: &Loaded) -> Result<String, ComposeError> {
    #[derive(serde::Serialize)]
    struct Named<'a> {
        name: &'a str,
        #[serde(flatten)]
        project: &'a Project,
    }
    serde_yaml_ng::to_string(&Named {
        name: &loaded.name,
        project: &loaded.project,
    })
    .map_err(|e| ComposeError::File(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Command, Mount, Port};

    /// Deserialises `text` for tests of the model alone.
    fn parse(text: &str) -> Project {
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ComposeError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, text).unwrap();
        std::fs::write(dir.path().join(".env"), "TAG=from-dotenv\nPORT=8080\n").unwrap();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&file, &|name| env.get(name).cloned())
    }

    #[test]
    fn short_and_long_forms_read_the_same() {
        let project = parse(
            "services:\n  web:\n    image: web\n    command: serve --port 80\n    environment: [A=1, B]\n    ports: [\"8080:80\", \"127.0.0.1:9090:90/udp\", 7000, {target: 81, published: \"8081\"}]\n    volumes: [data:/data:ro, ./site:/site, /anon]\n    depends_on: [db]\n  db:\n    image: db\n    environment: {PORT: 5432, DEBUG: true}\nvolumes:\n  data:\n",
        );
        let web = &project.services["web"];
        assert_eq!(web.command, Some(Command::Line("serve --port 80".into())));
        assert_eq!(web.environment["A"], Some("1".into()));
        assert_eq!(web.environment["B"], None);
        assert_eq!(
            web.ports[0],
            Port {
                target: 80,
                published: Some(8080),
                host_ip: None,
                protocol: "tcp".into()
            }
        );
        assert_eq!(web.ports[1].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(web.ports[1].protocol, "udp");
        assert_eq!((web.ports[2].target, web.ports[2].published), (7000, None));
        assert_eq!(web.ports[3].published, Some(8081));
        assert_eq!(
            web.volumes[0],
            Mount {
                kind: "volume".into(),
                source: Some("data".into()),
                target: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(web.volumes[1].kind, "bind");
        assert_eq!(web.volumes[2].source, None);
        assert_eq!(web.depends_on["db"].condition, "service_started");
        assert_eq!(
            project.services["db"].environment["PORT"],
            Some("5432".into())
        );
        assert_eq!(
            project.services["db"].environment["DEBUG"],
            Some("true".into())
        );
    }

    #[test]
    fn files_are_interpolated_checked_and_warned_about() {
        let loaded = load_text(
            "services:\n  web:\n    image: web:${TAG:-latest}\n    ports: [\"${PORT}:80\"]\n    x-note: mine\n    colour: blue\n",
            &[],
        )
        .unwrap();
        let web = &loaded.project.services["web"];
        assert_eq!(web.image.as_deref(), Some("web:from-dotenv"));
        assert_eq!(web.ports[0].published, Some(8080));
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].contains("services.web.colour"),
            "{:?}",
            loaded.warnings
        );
        let over = load_text(
            "services:\n  web:\n    image: web:${TAG}\n",
            &[("TAG", "env")],
        )
        .unwrap();
        assert_eq!(
            over.project.services["web"].image.as_deref(),
            Some("web:env")
        );

        let cycle = load_text(
            "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n",
            &[],
        )
        .unwrap_err();
        assert!(
            cycle
                .to_string()
                .contains("dependency cycle detected: a -> b -> c -> a"),
            "{cycle}"
        );
        let refused =
            load_text("services:\n  web: {image: x, privileged: true}\n", &[]).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("services.web.privileged is not supported yet"),
            "{refused}"
        );
        let missing =
            load_text("services:\n  web: {image: x, depends_on: [db]}\n", &[]).unwrap_err();
        assert!(
            missing.to_string().contains("undefined service \"db\""),
            "{missing}"
        );
        let required =
            load_text("services:\n  web: {image: \"${NAME:?set NAME}\"}\n", &[]).unwrap_err();
        assert!(
            required
                .to_string()
                .contains("NAME is missing a value: set NAME"),
            "{required}"
        );
        let broken = load_text("services:\n  web: [\n", &[]).unwrap_err();
        assert!(broken.to_string().contains("compose.yaml"), "{broken}");
    }

    #[test]
    fn profiles_choose_services_and_names_stay_unique() {
        let text = "services:\n  web: {image: x, depends_on: [db]}\n  db: {image: x}\n  debug: {image: x, profiles: [debug]}\n  tools: {image: x, profiles: [tools, debug]}\n";
        let names = |profiles: &[&str]| {
            let mut loaded = load_text(text, &[]).unwrap();
            let profiles: Vec<String> = profiles.iter().map(|p| p.to_string()).collect();
            loaded.activate(&profiles).unwrap();
            loaded.project.services.into_keys().collect::<Vec<_>>()
        };
        assert_eq!(names(&[]), ["db", "web"]);
        assert_eq!(names(&["tools"]), ["db", "tools", "web"]);
        assert_eq!(names(&["debug"]), ["db", "debug", "tools", "web"]);
        assert_eq!(names(&["*"]).len(), 4);

        let mut gated = load_text(
            "services:\n  web: {image: x, depends_on: [db]}\n  db: {image: x, profiles: [db]}\n",
            &[],
        )
        .unwrap();
        let error = gated.activate(&[]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("depends on undefined service \"db\""),
            "{error}"
        );

        let named = load_text(
            "services:\n  web: {image: x, container_name: web, deploy: {replicas: 2}}\n",
            &[],
        )
        .unwrap_err();
        assert!(
            named
                .to_string()
                .contains("can't set container_name and web"),
            "{named}"
        );
    }

    #[test]
    fn watch_rules_are_read_and_checked() {
        let loaded = load_text(
            "services:\n  web:\n    build: .\n    develop:\n      watch:\n        - {action: sync, path: ./src, target: /app, ignore: [\"*.tmp\"]}\n        - {action: rebuild, path: Dockerfile}\n",
            &[],
        )
        .unwrap();
        let rules = &loaded.project.services["web"]
            .develop
            .as_ref()
            .unwrap()
            .watch;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].action, crate::WatchAction::Sync);
        assert_eq!(rules[0].ignore, ["*.tmp"]);
        for (text, error) in [
            (
                "services:\n  web:\n    build: .\n    develop:\n      watch:\n        - {action: sync, path: ./src}\n",
                "a sync needs a target",
            ),
            (
                "services:\n  web:\n    image: x\n    develop:\n      watch:\n        - {action: rebuild, path: .}\n",
                "a rebuild needs the service to have a build section",
            ),
            (
                "services:\n  web:\n    build: .\n    develop:\n      watch:\n        - {action: sync, path: ., target: /a, initial_sync: true}\n",
                "initial_sync",
            ),
            (
                "services:\n  web:\n    build: .\n    develop:\n      watch:\n        - {action: sync+exec, path: ., target: /a}\n",
                "sync+exec",
            ),
        ] {
            let refused = load_text(text, &[]).unwrap_err().to_string();
            assert!(refused.contains(error), "{refused}");
        }
    }
}
