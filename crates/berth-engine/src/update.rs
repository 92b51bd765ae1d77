//! `docker update`: a container's resource limits and restart policy changed in place —
//! in its cgroup at once while it runs, and in its record for every later start.

use serde::Deserialize;
use serde_json::json;

use crate::containers::find;
use crate::model::{HostConfig, RestartPolicy, Status};
use crate::{Engine, Error, Result, settings};

/// What `docker update` may change. A zero or empty field is left as it is, as Docker
/// leaves it: the CLI sends every field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateRequest {
    /// `--memory` in bytes.
    pub memory: i64,
    /// `--memory-swap`: memory plus swap in bytes, -1 for unlimited.
    pub memory_swap: i64,
    /// `--memory-reservation` in bytes.
    pub memory_reservation: i64,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: i64,
    /// `--cpu-shares`.
    pub cpu_shares: i64,
    /// `--cpu-period` in microseconds.
    pub cpu_period: i64,
    /// `--cpu-quota` in microseconds per period.
    pub cpu_quota: i64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--pids-limit`; 0 or -1 for none.
    pub pids_limit: Option<i64>,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
}

impl Engine {
    /// Applies `update` to the container: checked as create checks its settings, written
    /// to its cgroup if it runs, and recorded.
    pub fn update_container(&self, name: &str, update: UpdateRequest) -> Result<()> {
        let mut records = self.containers.lock();
        let container = find(&records, name)?.clone();
        let host = updated(&container.request.host_config, update)?;
        if container.state.status == Status::Running {
            self.runtime()?.update(&container.id, &resources(&host)?)?;
        }
        let Some(record) = records.get_mut(&container.id) else {
            return Err(Error::NoSuchContainer(name.to_string()));
        };
        record.request.host_config = host;
        self.save(record)?;
        drop(records);
        self.emit_container(&container, "update", &[]);
        Ok(())
    }
}

/// `host` with `update` over it, checked.
fn updated(host: &HostConfig, update: UpdateRequest) -> Result<HostConfig> {
    if update.memory != 0
        && update.memory_swap == 0
        && host.memory_swap > 0
        && update.memory > host.memory_swap
    {
        return Err(Error::Invalid("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into()));
    }
    let policy = update.restart_policy.name.as_str();
    if host.auto_remove && !matches!(policy, "" | "no") {
        return Err(Error::Invalid(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
                .into(),
        ));
    }
    let mut host = host.clone();
    for (field, value) in [
        (&mut host.memory, update.memory),
        (&mut host.memory_swap, update.memory_swap),
        (&mut host.memory_reservation, update.memory_reservation),
        (&mut host.nano_cpus, update.nano_cpus),
        (&mut host.cpu_shares, update.cpu_shares),
        (&mut host.cpu_period, update.cpu_period),
        (&mut host.cpu_quota, update.cpu_quota),
    ] {
        if value != 0 {
            *field = value;
        }
    }
    for (field, value) in [
        (&mut host.cpuset_cpus, update.cpuset_cpus),
        (&mut host.cpuset_mems, update.cpuset_mems),
    ] {
        if !value.is_empty() {
            *field = value;
        }
    }
    if update.pids_limit.is_some() {
        host.pids_limit = update.pids_limit;
    }
    if !policy.is_empty() {
        host.restart_policy = update.restart_policy;
    }
    Ok(host)
}

/// The cgroup limits `host` sets, for a running container: a limit no longer set is
/// lifted.
fn resources(host: &HostConfig) -> Result<berth_runtime::LinuxResources> {
    let mut resources = settings::limits(host)?;
    if resources["pids"].is_null() {
        resources["pids"] = json!({"limit": -1});
    }
    serde_json::from_value(resources).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_empty_fields_leave_settings_alone() {
        let host = HostConfig {
            memory: 64 << 20,
            cpu_shares: 512,
            cpuset_cpus: "0".into(),
            ..HostConfig::default()
        };
        let update = UpdateRequest {
            memory: 32 << 20,
            pids_limit: Some(50),
            ..UpdateRequest::default()
        };
        let host = updated(&host, update).unwrap();
        assert_eq!(
            (
                host.memory,
                host.cpu_shares,
                host.cpuset_cpus.as_str(),
                host.pids_limit
            ),
            (32 << 20, 512, "0", Some(50))
        );
    }

    #[test]
    fn updates_are_checked_as_docker_checks_them() {
        let host = HostConfig {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            auto_remove: true,
            ..HostConfig::default()
        };
        let too_big = UpdateRequest {
            memory: 256 << 20,
            ..UpdateRequest::default()
        };
        assert!(
            updated(&host, too_big)
                .unwrap_err()
                .to_string()
                .contains("memoryswap")
        );
        let restart = UpdateRequest {
            restart_policy: RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 0,
            },
            ..UpdateRequest::default()
        };
        assert!(
            updated(&host, restart)
                .unwrap_err()
                .to_string()
                .contains("AutoRemove")
        );
    }
}
