//! What the runtime remembers about a container between commands: one directory per
//! container under the root (`/run/berth/oci/<id>`), holding `state.json` and, while the
//! container is created but not started, the `exec.fifo` its init waits on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::{Error, Result};

/// Status of a container as the runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being set up: what prestart and createRuntime hooks see.
    Creating,
    /// Set up, init waiting for `start`.
    Created,
    /// The user's process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// Init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(name)
    }
}

/// The record kept in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// The container id.
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Start time of that pid (field 22 of /proc/PID/stat), to tell it from a reused pid.
    pub pid_start_time: u64,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem on the host.
    pub rootfs: PathBuf,
    /// When the container was created, RFC 3339.
    pub created: String,
    /// The cgroup path (relative to each hierarchy's root).
    pub cgroup_path: String,
    /// The config's annotations.
    pub annotations: HashMap<String, String>,
    /// The spec's hooks: poststart runs at `start`, poststop at delete, when the bundle
    /// may be gone.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The container's seccomp profile, which `exec`'d processes get too.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

impl Saved {
    /// The state report of this container when its status is `status`.
    pub fn report(&self, status: Status) -> StateReport {
        StateReport {
            oci_version: "1.2.0".to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner: String::new(),
            oom_killed: false,
        }
    }
}

/// The JSON `state` prints: the runtime spec's state plus runc's extra fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReport {
    /// Version of the runtime spec.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Its status now.
    pub status: Status,
    /// Host pid of init (0 once stopped, as runc reports).
    pub pid: i32,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem on the host.
    pub rootfs: PathBuf,
    /// When it was created.
    pub created: String,
    /// The config's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
    /// Who owns it (runc prints an empty string for root).
    pub owner: String,
    /// Whether the kernel's OOM killer killed a process of the container (Berth's own
    /// field: Docker's `State.OOMKilled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// The runtime's state root: one directory per container.
#[derive(Debug, Clone)]
pub struct StateRoot {
    dir: PathBuf,
}

/// Container ids become directory names: refuse anything that could walk out of the root.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

impl StateRoot {
    /// The root directory, created if missing (mode 0700: state is root's business).
    pub fn open(dir: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .at(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where compiled seccomp programs are kept; '@' is never part of a container id.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.dir.join("@seccomp")
    }

    /// The directory of container `id`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Claims the directory for a new container, failing if the id is taken.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::Io {
                path: dir,
                source: e,
            }),
        }
    }

    /// Writes the record atomically (write, fsync, rename).
    pub fn save(&self, saved: &Saved) -> Result<()> {
        use std::io::Write;
        let dir = self.container_dir(&saved.id);
        let tmp = dir.join("state.json.tmp");
        let mut file = std::fs::File::create(&tmp).at(&tmp)?;
        let bytes = serde_json::to_vec(saved).map_err(|e| Error::Init(e.to_string()))?;
        file.write_all(&bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, dir.join("state.json")).at(dir.join("state.json"))
    }

    /// Reads the record of `id`.
    pub fn load(&self, id: &str) -> Result<Saved> {
        check_id(id)?;
        let path = self.container_dir(id).join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()));
            }
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Config {
            path,
            reason: e.to_string(),
        })
    }

    /// Ids of every container under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .at(&self.dir)?
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes the container's directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// Start time of `pid` in clock ticks since boot, or None when it is gone or a zombie.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The current time as RFC 3339 UTC with nanoseconds, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// `time` as RFC 3339 UTC with nanoseconds, as Docker stamps its logs and states.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let now = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn ids_that_could_escape_the_root_are_refused() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["abc", "a.b-c_d+1", "0123"] {
            check_id(good).unwrap();
        }
    }

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(pid_start_time(std::process::id() as i32).is_some());
        assert!(pid_start_time(i32::MAX).is_none());
    }
}
