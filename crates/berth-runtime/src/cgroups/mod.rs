//! Control groups, v1 and v2: make the container's group, apply the spec's limits, put
//! the init process in it, read usage back, freeze and thaw, and remove it.
//!
//! v1 (this project's build machines) has one hierarchy per controller under
//! /sys/fs/cgroup; v2 (most users) has one unified tree. The same `Cgroup` serves both.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::error::IoContext;
use crate::{Error, Result};

mod devices;
mod stats;

pub use stats::{CpuStats, CpuUsage, MemoryStats, MemoryUsage, PidsStats, Stats};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The container's cgroup: one directory per v1 hierarchy, or one in the v2 tree.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// The path as the spec gave it, relative to each hierarchy's root.
    path: String,
    /// (controller names of the hierarchy, directory of the container's group in it).
    dirs: Vec<(String, PathBuf)>,
    unified: bool,
}

/// Whether /sys/fs/cgroup is a cgroup2 mount (pure v2), as opposed to v1 or hybrid.
pub fn is_unified() -> bool {
    nix::sys::statfs::statfs(CGROUP_ROOT)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The v1 hierarchies mounted under /sys/fs/cgroup: (mount point, its controllers) —
/// and on a hybrid system the v2 tree beside them (/sys/fs/cgroup/unified), with no
/// controllers: a container joins it too, as runc's "" subsystem does, so what works on
/// v2 groups alone (BPF programs linked to a cgroup) reaches containers there as well.
fn v1_hierarchies() -> Vec<(PathBuf, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split(' ');
            let target = left.split(' ').nth(4)?;
            match right.next()? {
                "cgroup" => {}
                "cgroup2" => {
                    return target
                        .starts_with(CGROUP_ROOT)
                        .then(|| (PathBuf::from(target), String::new()));
                }
                _ => return None,
            }
            let options = right.nth(1)?;
            let controllers: Vec<&str> = options
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("name="))
                .collect();
            let named = options.split(',').any(|o| o.starts_with("name="));
            (target.starts_with(CGROUP_ROOT) && (!controllers.is_empty() || named))
                .then(|| (PathBuf::from(target), controllers.join(",")))
        })
        .collect()
}

impl Cgroup {
    /// The cgroup at `path` (relative to each hierarchy's root; a leading '/' is ignored).
    /// Nothing is created yet.
    pub fn new(path: &str) -> Self {
        let relative = path.trim_start_matches('/');
        if is_unified() {
            return Self {
                path: path.to_string(),
                dirs: vec![(String::new(), Path::new(CGROUP_ROOT).join(relative))],
                unified: true,
            };
        }
        let dirs = v1_hierarchies()
            .into_iter()
            .map(|(mount, controllers)| (controllers, mount.join(relative)))
            .collect();
        Self {
            path: path.to_string(),
            dirs,
            unified: false,
        }
    }

    /// The path as the spec gave it: what the state records to find the group again.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Creates the group, applies `resources` and moves `pid` into it.
    pub fn create(&self, resources: Option<&LinuxResources>, pid: i32) -> Result<()> {
        self.create_empty(resources)?;
        self.add(pid)
    }

    /// Creates the group and applies `resources`, with no process in it: a group that
    /// others go under (a pod's, whose limits bound its containers' together).
    pub fn create_empty(&self, resources: Option<&LinuxResources>) -> Result<()> {
        if self.unified {
            self.enable_v2_controllers()?;
        }
        for (controllers, dir) in &self.dirs {
            std::fs::create_dir_all(dir).at(dir)?;
            if controllers.split(',').any(|c| c == "cpuset") {
                inherit_cpuset(dir)?;
            }
        }
        match resources {
            Some(resources) if self.unified => self.apply_v2(resources),
            Some(resources) => self.apply_v1(resources),
            None => Ok(()),
        }
    }

    /// Changes the limits of an existing group to what `resources` sets, leaving the rest.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if self.unified {
            return self.apply_v2(resources);
        }
        // v1 wants memory.limit_in_bytes <= memory.memsw.limit_in_bytes at every write:
        // lift memsw first, so that limit and then memsw can be written whichever grows.
        if resources.memory().as_ref().and_then(|m| m.swap()).is_some() {
            self.set("memory", "memory.memsw.limit_in_bytes", -1)?;
        }
        self.apply_v1(resources)
    }

    /// Moves `pid` into the group (in every hierarchy).
    pub fn add(&self, pid: i32) -> Result<()> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        if self.unified {
            return self.dirs.first().map(|(_, d)| d.as_path());
        }
        self.dirs
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .map(|(_, d)| d.as_path())
    }

    fn set(&self, controller: &str, file: &str, value: impl ToString) -> Result<()> {
        match self.dir_of(controller) {
            Some(dir) => write(&dir.join(file), &value.to_string()),
            None => Err(Error::Field {
                field: "linux.resources".into(),
                reason: format!("the {controller} cgroup controller is not mounted"),
            }),
        }
    }

    /// Writes `value` when the spec gives one.
    fn set_some(&self, controller: &str, file: &str, value: Option<impl ToString>) -> Result<()> {
        value.map_or(Ok(()), |v| self.set(controller, file, v))
    }

    /// cpuset and pids read the same in both versions.
    fn apply_common(&self, r: &LinuxResources) -> Result<()> {
        if let Some(cpu) = r.cpu() {
            self.set_some("cpuset", "cpuset.cpus", cpu.cpus().as_ref())?;
            self.set_some("cpuset", "cpuset.mems", cpu.mems().as_ref())?;
        }
        let pids = r.pids().as_ref().map(|p| limit_or_max(p.limit()));
        self.set_some("pids", "pids.max", pids)
    }

    fn apply_v1(&self, r: &LinuxResources) -> Result<()> {
        if let Some(memory) = r.memory() {
            self.set_some("memory", "memory.limit_in_bytes", memory.limit())?;
            self.set_some("memory", "memory.soft_limit_in_bytes", memory.reservation())?;
            self.set_some("memory", "memory.memsw.limit_in_bytes", memory.swap())?;
            self.set_some("memory", "memory.swappiness", swappiness(memory)?)?;
            if memory.disable_oom_killer() == Some(true) {
                self.set("memory", "memory.oom_control", 1)?;
            }
            if memory.kernel().is_some() || memory.kernel_tcp().is_some() {
                // As runc 1.1: kernels since 5.16 have no separate kernel memory limit.
                tracing::warn!("linux.resources.memory.kernel and kernelTCP are ignored");
            }
        }
        if let Some(cpu) = r.cpu() {
            self.set_some("cpu", "cpu.shares", cpu.shares())?;
            self.set_some("cpu", "cpu.cfs_period_us", cpu.period())?;
            self.set_some("cpu", "cpu.cfs_quota_us", cpu.quota())?;
        }
        let weight = r.block_io().as_ref().and_then(|b| b.weight());
        self.set_some("blkio", "blkio.weight", weight)?;
        for rule in devices::effective_rules(r.devices().as_deref().unwrap_or_default()) {
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            self.set("devices", file, devices::v1_rule(&rule))?;
        }
        self.apply_common(r)
    }

    fn apply_v2(&self, r: &LinuxResources) -> Result<()> {
        if let Some(memory) = r.memory() {
            refuse_v1_only_memory(memory)?;
            self.set_some("memory", "memory.max", memory.limit().map(limit_or_max))?;
            self.set_some("memory", "memory.low", memory.reservation())?;
            if let (Some(swap), Some(limit)) = (memory.swap(), memory.limit()) {
                // v1's memsw counts memory+swap; v2's swap.max counts swap alone.
                let swap_only = if swap < 0 { swap } else { swap - limit.max(0) };
                self.set("memory", "memory.swap.max", limit_or_max(swap_only))?;
            }
        }
        if let Some(cpu) = r.cpu() {
            self.set_some("cpu", "cpu.weight", cpu.shares().map(shares_to_weight))?;
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = cpu
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                self.set(
                    "cpu",
                    "cpu.max",
                    format!("{quota} {}", cpu.period().unwrap_or(100_000)),
                )?;
            }
        }
        // blkio.weight 10..1000 maps onto io.weight 1..10000.
        let weight = r.block_io().as_ref().and_then(|b| b.weight());
        let io_weight = weight.map(|w| 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990);
        self.set_some("io", "io.weight", io_weight)?;
        let rules = devices::effective_rules(r.devices().as_deref().unwrap_or_default());
        if let (false, Some((_, dir))) = (rules.is_empty(), self.dirs.first()) {
            devices::attach(dir, &rules)?;
        }
        self.apply_common(r)
    }

    /// In v2, controllers must be enabled in every ancestor's subtree_control.
    fn enable_v2_controllers(&self) -> Result<()> {
        let Some((_, dir)) = self.dirs.first() else {
            return Ok(());
        };
        let available = std::fs::read_to_string(Path::new(CGROUP_ROOT).join("cgroup.controllers"))
            .unwrap_or_default();
        let enable: String = available
            .split_whitespace()
            .map(|c| format!("+{c} "))
            .collect();
        let mut ancestor = PathBuf::from(CGROUP_ROOT);
        for part in dir
            .strip_prefix(CGROUP_ROOT)
            .unwrap_or(dir)
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
        {
            if !enable.is_empty() {
                let _ = std::fs::write(ancestor.join("cgroup.subtree_control"), enable.trim());
            }
            ancestor.push(part);
            std::fs::create_dir_all(&ancestor).at(&ancestor)?;
        }
        if !enable.is_empty() {
            let _ = std::fs::write(ancestor.join("cgroup.subtree_control"), enable.trim());
        }
        Ok(())
    }

    /// Every pid in the group.
    pub fn pids(&self) -> Vec<i32> {
        let dir = self
            .dir_of("pids")
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()));
        let procs = dir
            .and_then(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .unwrap_or_default();
        procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Freezes (`true`) or thaws every process of the group.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if self.unified {
            return self.set("freezer", "cgroup.freeze", if frozen { "1" } else { "0" });
        }
        self.set(
            "freezer",
            "freezer.state",
            if frozen { "FROZEN" } else { "THAWED" },
        )?;
        // The kernel freezes asynchronously: wait until it says FROZEN.
        let dir = self
            .dir_of("freezer")
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for _ in 0..1000 {
            let state = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            if !frozen || state.trim() == "FROZEN" {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Init(
            "the freezer did not freeze the container within a second".into(),
        ))
    }

    /// Whether the group is frozen.
    pub fn is_frozen(&self) -> bool {
        let (file, frozen) = if self.unified {
            ("cgroup.freeze", "1")
        } else {
            ("freezer.state", "FROZEN")
        };
        self.dir_of("freezer")
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .is_some_and(|s| s.trim() == frozen)
    }

    /// Removes the group's directories, in every hierarchy even when one fails; fails
    /// (with the first failure) while processes remain in them.
    pub fn remove(&self) -> Result<()> {
        let mut first = Ok(());
        for (_, dir) in &self.dirs {
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound && first.is_ok() => {
                    first = Err(Error::Io {
                        path: dir.clone(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        first
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// A v1 cpuset group starts empty and refuses tasks: copy cpus and mems from the parent.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let mut chain = Vec::new();
    let mut current = dir;
    while let Some(parent) = current.parent() {
        chain.push(current);
        // Both files: a concurrent creator of the same parent may have filled one only.
        let filled = |file: &str| {
            !std::fs::read_to_string(parent.join(file))
                .unwrap_or_default()
                .trim()
                .is_empty()
        };
        if filled("cpuset.cpus") && filled("cpuset.mems") {
            break;
        }
        current = parent;
    }
    for group in chain.into_iter().rev() {
        let parent = group.parent().unwrap_or(group);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = std::fs::read_to_string(group.join(file)).unwrap_or_default();
            if own.trim().is_empty() {
                let inherited = std::fs::read_to_string(parent.join(file)).at(parent.join(file))?;
                write(&group.join(file), inherited.trim())?;
            }
        }
    }
    Ok(())
}

fn limit_or_max(limit: i64) -> String {
    if limit < 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

/// cpu.shares (2..262144) onto cpu.weight (1..10000), the formula runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        100
    } else {
        1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
    }
}

/// v2 has no per-group swappiness nor a switch for the OOM killer: refused, not dropped.
fn refuse_v1_only_memory(memory: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let v1_only = [
        ("swappiness", memory.swappiness().is_some()),
        (
            "disableOOMKiller",
            memory.disable_oom_killer() == Some(true),
        ),
    ];
    match v1_only.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Error::Field {
            field: format!("linux.resources.memory.{name}"),
            reason: "cgroup v2 has no such setting".into(),
        }),
        None => Ok(()),
    }
}

/// The spec's swappiness, which the kernel takes from 0 to 100.
fn swappiness(memory: &oci_spec::runtime::LinuxMemory) -> Result<Option<u64>> {
    match memory.swappiness() {
        Some(value) if value > 100 => Err(Error::Field {
            field: "linux.resources.memory.swappiness".into(),
            reason: format!("{value} is out of range: valid values are 0 to 100"),
        }),
        value => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_onto_weights_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn negative_limits_mean_unlimited() {
        assert_eq!(limit_or_max(-1), "max");
        assert_eq!(limit_or_max(100), "100");
    }

    #[test]
    fn v1_hierarchies_are_found_on_v1_hosts() {
        if is_unified() {
            return;
        }
        let found = v1_hierarchies();
        assert!(
            found
                .iter()
                .any(|(_, c)| c.split(',').any(|x| x == "memory")),
            "{found:?}"
        );
    }
}
