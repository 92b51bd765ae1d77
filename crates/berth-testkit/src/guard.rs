//! Guards that remove what a test made when they drop, on success and on panic alike:
//! mounts, directories, processes, network namespaces, cgroups and nftables tables.
//! `scripts/leak-check` runs after the suite and fails it if anything is left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::Result;
use crate::error::IoContext;

/// A scratch directory under the system temp dir. On drop, every mount below it is
/// detached (deepest first) before the directory is removed, so a test that mounted a
/// rootfs and failed half way still leaves nothing behind.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Makes a new, empty scratch directory whose name starts with `berth-test-<label>`.
    pub fn new(label: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-test-{label}-"))
            .tempdir()
            .at(std::env::temp_dir())?
            .keep();
        Ok(Self { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Detaches every mount point at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let mut targets: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|target| PathBuf::from(unescape_octal(target)))
        .filter(|target| target.starts_with(dir))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
    for target in targets {
        if let Ok(c) = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()) {
            // SAFETY: `c` is a valid NUL-terminated path; umount2 does not keep the pointer.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A child process killed (SIGKILL) and reaped on drop, unless it already exited.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Creates the namespace `name`, a test host with its loopback up.
    pub fn create(name: &str) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let guard = Self {
            name: name.to_string(),
        };
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        Ok(guard)
    }

    /// Its path, for `setns` and `nsenter --net=`.
    pub fn path(&self) -> std::path::PathBuf {
        std::path::Path::new("/run/netns").join(&self.name)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A cgroup path (relative to each hierarchy's root) removed from every mounted hierarchy
/// on drop, after its processes are killed.
#[derive(Debug)]
pub struct CgroupGuard {
    relative: PathBuf,
}

impl CgroupGuard {
    /// Guards the cgroup `relative` (for example `berth-test/abc`); creating it is the
    /// caller's business, usually the runtime's.
    pub fn new(relative: impl Into<PathBuf>) -> Self {
        Self {
            relative: relative.into(),
        }
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        // A runtime process still starting a container when the test ends joins the
        // hierarchies one by one, and may make the group again in one this pass has
        // already emptied: passes go on until no hierarchy has it (three at most).
        for _ in 0..3 {
            let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
                return;
            };
            let roots: Vec<PathBuf> = hierarchies.flatten().map(|h| h.path()).collect();
            for root in &roots {
                remove_cgroup_tree(&root.join(&self.relative));
                // Parents the runtime made on the way (`berth-test/`) go too once empty.
                let mut parent = self.relative.parent();
                while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                    let _ = std::fs::remove_dir(root.join(dir));
                    parent = dir.parent();
                }
            }
            if roots.iter().all(|root| !root.join(&self.relative).exists()) {
                return;
            }
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            remove_cgroup_tree(&child.path());
        }
    }
    for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
    {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: kill(2) with a pid read from the cgroup; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    // Killed processes leave the group only once the kernel has torn them down: until
    // then it is busy, so it is removed when it empties (within 10 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(error) = std::fs::remove_dir(dir) {
        if error.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An nftables table deleted on drop (`nft delete table FAMILY NAME`).
#[derive(Debug)]
pub struct NftTableGuard {
    family: String,
    name: String,
}

impl NftTableGuard {
    /// Guards the table `name` of `family` (`ip`, `inet`, …); creating it is the caller's business.
    pub fn new(family: &str, name: &str) -> Self {
        Self {
            family: family.to_string(),
            name: name.to_string(),
        }
    }
}

impl Drop for NftTableGuard {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", &self.family, &self.name])
            .status();
    }
}

fn run(command: &mut Command) -> Result<()> {
    let program = format!("{command:?}");
    let status = command.status().at(&program)?;
    if status.success() {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "{program} failed with {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal(r"/tmp/a\040b\134c"), "/tmp/a b\\c");
        assert_eq!(unescape_octal(r"/plain\0"), r"/plain\0");
    }

    #[test]
    fn scratch_unmounts_what_was_mounted_below_it() {
        let scratch = Scratch::new("guard").unwrap();
        let target = scratch.path().join("mnt");
        std::fs::create_dir(&target).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success());
        let dir = scratch.path().to_path_buf();
        drop(scratch);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(dir.to_str().unwrap()),
            "mount left behind under {}",
            dir.display()
        );
        assert!(!dir.exists());
    }

    #[test]
    fn child_guard_kills_a_running_process() {
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id() as i32;
        drop(ChildGuard(child));
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "process {pid} still alive");
    }
}
