//! Network namespaces held open by bind mounts, as `ip netns` holds them: the engine makes
//! a container's namespace before the container exists, wires it, and the runtime then
//! joins it by path.
//!
//! A namespace is entered only on a short-lived thread of its own (`setns` moves just the
//! calling thread), so no thread of the caller ever changes its namespace.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::{Context, Error, Result, netlink};

/// Makes a new network namespace held at `path` (an empty file made for it), with its
/// loopback interface up, as Docker's sandboxes have it.
pub fn create(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).or_os(|| format!("create {}", dir.display()))?;
    }
    std::fs::File::create(path).or_os(|| format!("create {}", path.display()))?;
    let target = path.to_path_buf();
    let made = on_own_thread(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .or_os(|| "unshare the network namespace".into())?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .or_os(|| format!("bind the network namespace to {}", target.display()))?;
        let mut netlink = netlink::Netlink::open()?;
        netlink.set_up(netlink::index_of("lo")?)
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Releases the namespace held at `path`: it goes once no process is left in it, and
/// with it the container's end of each veth pair (and so the pair). A path that holds
/// nothing, or does not exist, is no error.
pub fn remove(path: &Path) -> Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e).or_os(|| format!("unmount {}", path.display())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).or_os(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Runs `work` on a thread that has joined the network namespace at `path`.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let namespace = std::fs::File::open(path).or_os(|| format!("open {}", path.display()))?;
    let shown = path.display().to_string();
    on_own_thread(move || {
        nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET)
            .or_os(|| format!("join the network namespace {shown}"))?;
        work()
    })
}

fn on_own_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(work)
        .join()
        .unwrap_or_else(|_| Err(Error::Invalid("a network namespace thread panicked".into())))
}
