//! The container's init: the code that runs in the cloned child, inside the new
//! namespaces, from the clone until execve. It sets up the container's world in named
//! stages and reports the first failure to the runtime over the sync socket.
//!
//! The child is a fork of a single-threaded runtime process (the CLI, or a dedicated
//! thread-free caller), so it may allocate; callers with threads use `spawn_blocking`
//! into a helper process, never this path directly.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Hooks, LinuxNamespaceType, PosixRlimitType, Process, Spec};

use crate::bundle::Bundle;
use crate::caps::ProcessCaps;
use crate::error::SysContext;
use crate::seccomp::Program;
use crate::state::Status;
use crate::{Error, Result};

/// How init hands over to the user's process.
pub(crate) enum Handover {
    /// Exec at once (`run`).
    Exec,
    /// Wait until `start` opens the exec fifo, then exec (`create`).
    WaitForStart(OwnedFd),
}

/// Everything init needs, prepared by the runtime before the clone.
pub(crate) struct InitConfig<'a> {
    pub bundle: &'a Bundle,
    pub sync: OwnedFd,
    pub handover: Handover,
    pub cgroup_path: String,
    /// Namespaces to join: (open file of the namespace, its type).
    pub joins: Vec<(OwnedFd, CloneFlags)>,
    pub new_namespaces: CloneFlags,
    pub seccomp: Option<&'a Program>,
    /// The console socket to send the terminal's master to, when the process has one.
    pub console: Option<OwnedFd>,
    /// Move the root instead of pivot_root (`--no-pivot`).
    pub no_pivot: bool,
}

/// Message prefixes on the sync socket.
pub(crate) const MSG_READY: u8 = b'R';
pub(crate) const MSG_ERROR: u8 = b'E';
pub(crate) const MSG_GO: u8 = b'G';
pub(crate) const MSG_PID: u8 = b'P';
pub(crate) const MSG_HOOKS: u8 = b'H';

/// Runs init; only returns (with the error already reported) when set-up failed.
pub(crate) fn run(config: InitConfig) -> ! {
    report_and_exit(config.sync.as_raw_fd(), || setup_and_exec(config))
}

/// Runs `stage`; on failure sends its error on the sync socket `sync` and exits 127.
pub(crate) fn report_and_exit(sync: i32, stage: impl FnOnce() -> Result<Never>) -> ! {
    // A duplicate keeps the socket open after the stage drops its own handle.
    // SAFETY: dup of a descriptor number; a failure gives -1, checked below.
    let keep_open = unsafe { libc::dup(sync) };
    let error = match stage() {
        Ok(never) => match never {},
        Err(error) => error,
    };
    let message = error_message(&error);
    if keep_open >= 0 {
        // SAFETY: writing a byte buffer we own to a descriptor we duplicated.
        unsafe { libc::write(keep_open, message.as_ptr().cast(), message.len()) };
    }
    // SAFETY: _exit ends the child without running the parent's atexit handlers.
    unsafe { libc::_exit(127) }
}

/// An error as init reports it: MSG_ERROR, then the cause.
fn error_message(error: &Error) -> Vec<u8> {
    let mut message = vec![MSG_ERROR];
    match error {
        Error::Init(text) => message.extend_from_slice(text.as_bytes()),
        other => message.extend_from_slice(other.to_string().as_bytes()),
    }
    message
}

/// The type of a function that only returns on failure.
pub(crate) enum Never {}

fn setup_and_exec(config: InitConfig) -> Result<Never> {
    let spec = &config.bundle.spec;
    wait_for_go(&config.sync)?;
    // After GO: the runtime has written any id maps, which needs init dumpable.
    crate::sealed_exe::make_non_dumpable()?;
    // A new cgroup namespace is rooted where the process is when it unshares: only now,
    // after the runtime moved it into the container's cgroup.
    if config.new_namespaces.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .or_sys(|| "unshare the cgroup namespace".into())?;
    }
    for (fd, kind) in &config.joins {
        nix::sched::setns(fd, *kind).or_sys(|| format!("join {kind:?} namespace"))?;
    }
    let user_ns = config.new_namespaces.contains(CloneFlags::CLONE_NEWUSER)
        || config
            .joins
            .iter()
            .any(|(_, kind)| *kind == CloneFlags::CLONE_NEWUSER);
    if user_ns {
        become_namespace_root()?;
    }
    if config.new_namespaces.contains(CloneFlags::CLONE_NEWUTS) {
        set_names(spec)?;
    }
    let new_mount_ns = config.new_namespaces.contains(CloneFlags::CLONE_NEWNS);
    if new_mount_ns {
        crate::mounts::prepare_rootfs(spec, &config.bundle.rootfs, &config.cgroup_path)?;
    }
    let hooks = spec.hooks().as_ref();
    let hook_state = if crate::hooks::need_creation_step(hooks) {
        Some(creation_hooks(&config.sync, hooks)?)
    } else {
        None
    };
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Init("no process".into()))?;
    if new_mount_ns {
        crate::mounts::pivot(&config.bundle.rootfs, config.no_pivot)?;
        make_cwd(process)?;
        // Sysctls go in before readonlyPaths make /proc/sys read-only.
        write_sysctls(spec)?;
        crate::mounts::harden(spec)?;
        // Last: an unbindable root would refuse the read-only paths' bind mounts.
        crate::mounts::set_root_propagation(spec)?;
    } else {
        nix::unistd::chroot(&config.bundle.rootfs).or_sys(|| "chroot".into())?;
        make_cwd(process)?;
        write_sysctls(spec)?;
    }
    let mut prepared = prepare_process(process)?;
    if let Some(console) = &config.console {
        prepared.open_terminal(console, process)?;
    }
    send(&config.sync, MSG_READY)?;
    let started = match &config.handover {
        Handover::WaitForStart(fifo) => Some(wait_for_start(fifo)?),
        Handover::Exec => None,
    };
    let Err(error) = (|| {
        if let Some(state) = &hook_state {
            let state = crate::hooks::with_status(state, Status::Created);
            let start = crate::hooks::of_kind(hooks, Hooks::start_container);
            crate::hooks::run_all(start, &state)?;
        }
        exec_process(process, &prepared, config.seccomp)
    })();
    if let Some(mut started) = started {
        // `create` is gone by now: `start` reads this end of the fifo until exec closes it.
        use std::io::Write;
        let _ = started.write_all(&error_message(&error));
    }
    Err(error)
}

/// The parts of the process resolved before the runtime is told READY, so that a missing
/// program or a refused limit fails `create` (or `exec`) rather than after it.
pub(crate) struct PreparedProcess {
    program: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    caps: ProcessCaps,
    /// The slave of the process's terminal, made in the container's devpts.
    terminal: Option<OwnedFd>,
}

impl PreparedProcess {
    /// Makes the process's terminal and sends its master over `console`.
    pub(crate) fn open_terminal(&mut self, console: &OwnedFd, process: &Process) -> Result<()> {
        let user = process.user();
        self.terminal = Some(crate::console::open_and_send(
            console,
            user.uid(),
            user.gid(),
        )?);
        Ok(())
    }
}

/// Resolves the program and capabilities and applies oom_score_adj and rlimits.
pub(crate) fn prepare_process(process: &Process) -> Result<PreparedProcess> {
    let c_strings = |list: &Option<Vec<String>>| -> Vec<CString> {
        list.iter()
            .flatten()
            .filter_map(|s| CString::new(s.as_str()).ok())
            .collect()
    };
    let args = c_strings(process.args());
    let arg0 = args.first().ok_or_else(|| Error::Field {
        field: "process.args".into(),
        reason: "must name the program to run".into(),
    })?;
    let program = find_program(arg0, process.env().as_deref().unwrap_or_default())?;
    let caps = ProcessCaps::from_spec(process.capabilities().as_ref())?;
    if let Some(score) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", score.to_string())
            .map_err(|e| Error::Init(format!("oom_score_adj: {e}")))?;
    }
    set_rlimits(process)?;
    Ok(PreparedProcess {
        program,
        env: c_strings(process.env()),
        args,
        caps,
        terminal: None,
    })
}

/// The last steps, in the order privilege allows: descriptors, bounding set, cwd, user,
/// capability sets, no_new_privs, exec. Without no_new_privs, loading a seccomp
/// filter needs CAP_SYS_ADMIN, so it goes in first; with it, last, so that the filter sees
/// as few of the runtime's own syscalls as possible. The descriptors are marked before
/// any filter: a profile need not allow close_range (Docker's older ones do not), only
/// what runc also calls after loading it.
pub(crate) fn exec_process(
    process: &Process,
    prepared: &PreparedProcess,
    seccomp: Option<&Program>,
) -> Result<Never> {
    if let Some(terminal) = &prepared.terminal {
        crate::console::attach(terminal)?;
    }
    close_inherited_descriptors()?;
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let load_seccomp = || seccomp.map_or(Ok(()), Program::load);
    if !no_new_privs {
        load_seccomp()?;
    }
    prepared
        .caps
        .apply_bounding()
        .or_sys(|| "drop bounding capabilities".into())?;
    // As root first, as runc does: the user may work in a directory it could not enter.
    let cwd = process.cwd();
    let entered = nix::unistd::chdir(cwd).is_ok();
    set_user(process)?;
    prepared
        .caps
        .apply_sets()
        .or_sys(|| "set capabilities".into())?;
    if !entered {
        nix::unistd::chdir(cwd).or_sys(|| format!("chdir to cwd {}", cwd.display()))?;
    }
    if no_new_privs {
        // SAFETY: prctl with integer arguments only.
        nix::errno::Errno::result(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
            .or_sys(|| "set no_new_privs".into())?;
        load_seccomp()?;
    }
    let Err(error) = nix::unistd::execve(&prepared.program, &prepared.args, &prepared.env);
    Err(Error::Sys {
        what: format!("exec {}", prepared.program.to_string_lossy()),
        source: error,
    })
}

/// Marks every descriptor above stderr close-on-exec, those the runtime's caller passed
/// down included, so none reaches the container's process (runc does the same). Kernels
/// before 5.11 lack CLOSE_RANGE_CLOEXEC: there each open descriptor is marked in turn.
fn close_inherited_descriptors() -> Result<()> {
    // SAFETY: close_range with integer arguments only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match nix::errno::Errno::result(rc) {
        Ok(_) => Ok(()),
        // EPERM: the runtime itself runs under a filter that refuses close_range.
        Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
            mark_each_descriptor()
        }
        Err(e) => Err(e).or_sys(|| "mark inherited descriptors close-on-exec".into()),
    }
}

/// Marks each descriptor listed in /proc/self/fd above stderr close-on-exec; the listing's
/// own descriptor is among them and closes when the listing is dropped.
fn mark_each_descriptor() -> Result<()> {
    let listing = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::Init(format!("list /proc/self/fd: {e}")))?;
    let fds: Vec<i32> = listing
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number; one closed meanwhile gives EBADF.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        match nix::errno::Errno::result(rc) {
            Ok(_) | Err(nix::errno::Errno::EBADF) => {}
            Err(e) => return Err(e).or_sys(|| format!("mark descriptor {fd} close-on-exec")),
        }
    }
    Ok(())
}

/// Takes the ids of root inside the user namespace. Init keeps the host ids it was cloned
/// with, which the namespace does not map, and files it made would fail with EOVERFLOW.
fn become_namespace_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .or_sys(|| "become gid 0 in the user namespace".into())?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .or_sys(|| "become uid 0 in the user namespace".into())
}

/// Asks the runtime to run its creation hooks, then runs createContainer hooks here, in
/// the container's namespaces before pivot_root. Returns the state the runtime sent.
fn creation_hooks(sync: &OwnedFd, hooks: Option<&Hooks>) -> Result<Vec<u8>> {
    send(sync, MSG_HOOKS)?;
    let mut buffer = vec![0u8; 1 << 16];
    let n = nix::unistd::read(sync.as_raw_fd(), &mut buffer).or_sys(|| "read the state".into())?;
    if n == 0 || buffer[0] != MSG_GO {
        return Err(Error::Init("the runtime went away during the hooks".into()));
    }
    buffer.truncate(n);
    buffer.remove(0);
    crate::hooks::run_all(
        crate::hooks::of_kind(hooks, Hooks::create_container),
        &buffer,
    )?;
    Ok(buffer)
}

fn wait_for_go(sync: &OwnedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    match nix::unistd::read(sync.as_raw_fd(), &mut byte) {
        Ok(1) if byte[0] == MSG_GO => Ok(()),
        _ => Err(Error::Init(
            "the runtime went away before init could start".into(),
        )),
    }
}

pub(crate) fn send(sync: &OwnedFd, byte: u8) -> Result<()> {
    nix::unistd::write(sync, &[byte])
        .map(|_| ())
        .or_sys(|| "write to the runtime".into())
}

fn set_names(spec: &Spec) -> Result<()> {
    if let Some(hostname) = spec.hostname() {
        nix::unistd::sethostname(hostname).or_sys(|| format!("set hostname {hostname:?}"))?;
    }
    if let Some(domain) = spec.domainname() {
        let c = CString::new(domain.as_str())
            .map_err(|_| Error::Init("domainname holds a NUL".into()))?;
        // SAFETY: valid pointer and length of a C string.
        nix::errno::Errno::result(unsafe { libc::setdomainname(c.as_ptr(), domain.len()) })
            .or_sys(|| "set domainname".into())?;
    }
    Ok(())
}

fn write_sysctls(spec: &Spec) -> Result<()> {
    for (key, value) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .into_iter()
        .flatten()
    {
        if key.contains("..") {
            return Err(Error::Field {
                field: format!("linux.sysctl.{key}"),
                reason: "not a sysctl name".into(),
            });
        }
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, &value)
            .map_err(|e| Error::Init(format!("sysctl {key}={value}: {e}")))?;
    }
    Ok(())
}

fn set_rlimits(process: &Process) -> Result<()> {
    let limits = process.rlimits().clone().unwrap_or_default();
    for limit in limits {
        let resource = rlimit_resource(limit.typ());
        let value = libc::rlimit {
            rlim_cur: limit.soft(),
            rlim_max: limit.hard(),
        };
        // SAFETY: setrlimit with a valid resource and a struct on the stack.
        let rc = unsafe { libc::setrlimit(resource, &value) };
        nix::errno::Errno::result(rc).or_sys(|| {
            format!(
                "setrlimit {:?} to {}/{}",
                limit.typ(),
                limit.soft(),
                limit.hard()
            )
        })?;
    }
    Ok(())
}

fn rlimit_resource(kind: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match kind {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Waits for `start` and tells it init got the signal. The fifo's write end is returned
/// open: it closes at exec (it is close-on-exec), and until then carries any failure to
/// `start`, which reads it to the end.
fn wait_for_start(fifo: &OwnedFd) -> Result<std::fs::File> {
    // Opening the fifo for writing blocks until `start` opens it for reading.
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::Init(format!("open exec fifo: {e}")))?;
    use std::io::Write;
    (&file)
        .write_all(b"0")
        .map_err(|e| Error::Init(format!("write exec fifo: {e}")))?;
    Ok(file)
}

fn set_user(process: &Process) -> Result<()> {
    let user = process.user();
    // Keep the permitted set across setuid; capset sets the final sets afterwards.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).or_sys(|| "setgroups".into())?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(user.gid()))
        .or_sys(|| format!("setgid {}", user.gid()))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(user.uid()))
        .or_sys(|| format!("setuid {}", user.uid()))?;
    if let Some(umask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    }
    Ok(())
}

/// The program to exec: `args[0]` itself when it holds a '/', otherwise the first match on
/// the container's `PATH`, as execvp would find it — looked up before `start` so that a
/// missing program fails `create`, as runc does.
fn find_program(arg0: &CString, env: &[String]) -> Result<CString> {
    let name = arg0.to_string_lossy();
    if name.contains('/') {
        return executable(Path::new(name.as_ref()))
            .map(|()| arg0.clone())
            .map_err(|why| Error::Init(format!("exec: {name:?}: {why}")));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name.as_ref());
        if executable(&candidate).is_ok() {
            return CString::new(candidate.into_os_string().into_encoded_bytes())
                .map_err(|_| Error::Init("NUL in path".into()));
        }
    }
    Err(Error::Init(format!(
        "exec: {name:?}: executable file not found in $PATH"
    )))
}

/// Whether `path` is a file execve could run, or why not.
fn executable(path: &Path) -> std::result::Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("stat {}: {e}", path.display()))?;
    if metadata.is_dir() {
        return Err(format!("{} is a directory", path.display()));
    }
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| format!("{}: {}", path.display(), e.desc()))
}

/// Creates the process's working directory when the image lacks it, as runc and crun do,
/// before the root is made read-only; one that is not a directory fails `create`.
fn make_cwd(process: &Process) -> Result<()> {
    let cwd = process.cwd();
    std::fs::create_dir_all(cwd).map_err(|e| Error::Field {
        field: "process.cwd".into(),
        reason: format!("{}: {e}", cwd.display()),
    })
}

/// Maps a spec namespace type onto its clone flag.
pub(crate) fn clone_flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback for kernels (or filters) without close_range marks what is open.
    #[test]
    fn each_open_descriptor_is_marked_close_on_exec() {
        // SAFETY: dup of stdin, closed below; a failure gives -1, checked.
        let fd = unsafe { libc::dup(0) };
        assert!(fd > 2);
        // SAFETY: fcntl on the descriptor just made.
        let flags = || unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(
            flags() & libc::FD_CLOEXEC,
            0,
            "dup gives a descriptor without the flag"
        );
        mark_each_descriptor().unwrap();
        assert_eq!(flags() & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        // SAFETY: closing the descriptor this test made.
        unsafe { libc::close(fd) };
    }
}
