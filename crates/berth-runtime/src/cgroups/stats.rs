//! Usage read back from the container's cgroup, v1 or v2, in the shape of runc's
//! `events --stats` data: what `docker stats`, the kubelet's summary and the autoscaler
//! read, and where an OOM kill shows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Cgroup;

/// One reading of the container's usage.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// CPU time used.
    pub cpu: CpuStats,
    /// Memory use and limits.
    pub memory: MemoryStats,
    /// Process count and limit.
    pub pids: PidsStats,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuStats {
    /// Totals since the container started.
    pub usage: CpuUsage,
}

/// CPU time split as the kernel accounts it, in nanoseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuUsage {
    /// All CPU time.
    pub total: u64,
    /// Time in the kernel.
    pub kernel: u64,
    /// Time in user space.
    pub user: u64,
}

/// Memory, in bytes.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MemoryStats {
    /// Current use, peak and limit.
    pub usage: MemoryUsage,
    /// Processes the kernel's OOM killer killed in this group.
    pub oom_kill: u64,
    /// The kernel's own breakdown (memory.stat), by its names.
    pub raw: BTreeMap<String, u64>,
}

/// Use against limit, in bytes; `limit` is u64::MAX when unlimited, as runc reports it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MemoryUsage {
    /// Now.
    pub usage: u64,
    /// The highest so far (0 where the kernel does not keep it).
    pub max: u64,
    /// The limit.
    pub limit: u64,
    /// How many times the limit was hit.
    pub failcnt: u64,
}

/// Processes and their limit (0 when unlimited, as runc reports it).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PidsStats {
    /// Processes and threads now.
    pub current: u64,
    /// The limit.
    pub limit: u64,
}

/// Nanoseconds in one USER_HZ tick of v1's cpuacct.stat.
const NANOS_PER_TICK: u64 = 10_000_000;

impl Cgroup {
    /// Reads the group's usage; counters of controllers that are not there read as 0.
    pub fn stats(&self) -> Stats {
        if self.unified {
            self.stats_v2()
        } else {
            self.stats_v1()
        }
    }

    /// How many processes of the group the OOM killer has killed.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.unified {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        self.keyed("memory", file).get(key).copied().unwrap_or(0)
    }

    fn stats_v1(&self) -> Stats {
        let cpuacct = self.keyed("cpuacct", "cpuacct.stat");
        let memory = |file| self.number("memory", file);
        Stats {
            cpu: CpuStats {
                usage: CpuUsage {
                    total: self.number("cpuacct", "cpuacct.usage"),
                    kernel: cpuacct.get("system").copied().unwrap_or(0) * NANOS_PER_TICK,
                    user: cpuacct.get("user").copied().unwrap_or(0) * NANOS_PER_TICK,
                },
            },
            memory: MemoryStats {
                usage: MemoryUsage {
                    usage: memory("memory.usage_in_bytes"),
                    max: memory("memory.max_usage_in_bytes"),
                    limit: memory("memory.limit_in_bytes"),
                    failcnt: memory("memory.failcnt"),
                },
                oom_kill: self.oom_kills(),
                raw: self.keyed("memory", "memory.stat"),
            },
            pids: self.pids_stats(),
        }
    }

    fn stats_v2(&self) -> Stats {
        let cpu = self.keyed("cpu", "cpu.stat");
        let micros = |key: &str| cpu.get(key).copied().unwrap_or(0) * 1000;
        let events = self.keyed("memory", "memory.events");
        Stats {
            cpu: CpuStats {
                usage: CpuUsage {
                    total: micros("usage_usec"),
                    kernel: micros("system_usec"),
                    user: micros("user_usec"),
                },
            },
            memory: MemoryStats {
                usage: MemoryUsage {
                    usage: self.number("memory", "memory.current"),
                    max: self.number("memory", "memory.peak"),
                    limit: self.number("memory", "memory.max"),
                    failcnt: events.get("max").copied().unwrap_or(0),
                },
                oom_kill: events.get("oom_kill").copied().unwrap_or(0),
                raw: self.keyed("memory", "memory.stat"),
            },
            pids: self.pids_stats(),
        }
    }

    fn pids_stats(&self) -> PidsStats {
        let limit = self.number("pids", "pids.max");
        PidsStats {
            current: self.number("pids", "pids.current"),
            limit: if limit == u64::MAX { 0 } else { limit },
        }
    }

    fn read(&self, controller: &str, file: &str) -> String {
        self.dir_of(controller)
            .and_then(|dir| std::fs::read_to_string(dir.join(file)).ok())
            .unwrap_or_default()
    }

    /// A file holding one number; "max" reads as u64::MAX.
    fn number(&self, controller: &str, file: &str) -> u64 {
        parse_number(self.read(controller, file).trim())
    }

    /// A file of `key value` lines.
    fn keyed(&self, controller: &str, file: &str) -> BTreeMap<String, u64> {
        parse_keyed(&self.read(controller, file))
    }
}

fn parse_number(text: &str) -> u64 {
    if text == "max" {
        u64::MAX
    } else {
        text.parse().unwrap_or(0)
    }
}

fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), parse_number(value.trim())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_files_parse() {
        assert_eq!(parse_number("max"), u64::MAX);
        assert_eq!(parse_number("4096"), 4096);
        assert_eq!(parse_number("garbage"), 0);
        let keyed = parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
        assert_eq!(keyed.get("oom_kill"), Some(&2));
        assert_eq!(keyed.len(), 3);
    }
}
