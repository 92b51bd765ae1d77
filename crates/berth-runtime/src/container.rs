//! Container lifecycle operations over the state root: create, start, run, state, kill,
//! delete, list, pause and resume — the runc command line's verbs as a Rust API.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::Pid;
use oci_spec::runtime::{Hooks, LinuxSeccomp, Process};

use crate::seccomp::Program;

use crate::bundle::Bundle;
use crate::cgroups::{Cgroup, Stats};
use crate::error::{IoContext, SysContext};
use crate::init::{
    Handover, InitConfig, MSG_ERROR, MSG_GO, MSG_HOOKS, MSG_PID, MSG_READY, clone_flag,
};
use crate::state::{Saved, StateReport, StateRoot, Status, now_rfc3339, pid_start_time};
use crate::{Error, Result};

const EXEC_FIFO: &str = "exec.fifo";

/// Options of `exec` beyond the process.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    /// Return once the process has started instead of waiting for it.
    pub detach: bool,
    /// Write the process's host pid to this file (`--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// Send the terminal's master to the listener on this socket (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// A descriptor of this process to read the relayed terminal's sizes from, one
    /// `ROWS COLUMNS` line each (`--resize-fd`, a Berth extension: a caller relaying
    /// through us has no terminal of its own for us to copy the size from).
    pub resize_fd: Option<i32>,
}

/// Options of `create` and `run` beyond the bundle.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    /// Write the init's host pid to this file (`--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// Send the terminal's master to the listener on this socket (`--console-socket`).
    pub console_socket: Option<PathBuf>,
    /// Move the root filesystem into place instead of pivot_root (`--no-pivot`), for
    /// hosts whose own root cannot be pivoted away from (an initramfs).
    pub no_pivot: bool,
}

/// A container whose init has been spawned.
struct Spawned {
    pid: i32,
    /// Our end of a private console socket, when we relay the terminal ourselves.
    console: Option<OwnedFd>,
}

/// The runtime: containers under one state root.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: StateRoot,
}

impl Runtime {
    /// A runtime keeping its state under `root` (runc's `--root`).
    pub fn new(root: &Path) -> Result<Self> {
        Ok(Self {
            root: StateRoot::open(root)?,
        })
    }

    /// Creates container `id` from the bundle: namespaces, cgroup and filesystem are set
    /// up and init waits for `start`. Returns init's host pid.
    pub fn create(&self, id: &str, bundle: &Path, options: &CreateOptions) -> Result<i32> {
        let spawned = self.claim_and_spawn(id, bundle, options, false, |dir| {
            let fifo = dir.join(EXEC_FIFO);
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
                .or_sys(|| format!("mkfifo {}", fifo.display()))?;
            open_path(&fifo).map(Handover::WaitForStart)
        })?;
        Ok(spawned.pid)
    }

    /// Creates and starts container `id` in one step and waits for it to exit, then deletes
    /// it unless `keep`. Returns the exit status as a shell would see it (128+N for signal N).
    pub fn run(&self, id: &str, bundle: &Path, options: &CreateOptions, keep: bool) -> Result<i32> {
        let spawned = self.start_at_once(id, bundle, options, true)?;
        if let Some(console) = spawned.console {
            crate::console::relay(crate::console::receive_master(&console)?, None);
        }
        let code = wait_exit(spawned.pid);
        if !keep {
            self.delete(id, true)?;
        }
        Ok(code)
    }

    /// Waits for container `id`'s init to exit and returns its status as a shell sees it
    /// (128+N for signal N). Only init's parent, the process that created the container,
    /// can wait for it; for any other caller it returns 255 at once.
    pub fn wait(&self, id: &str) -> Result<i32> {
        Ok(wait_exit(self.root.load(id)?.pid))
    }

    /// Creates and starts container `id` and returns at once (`run --detach`).
    pub fn run_detached(&self, id: &str, bundle: &Path, options: &CreateOptions) -> Result<i32> {
        Ok(self.start_at_once(id, bundle, options, false)?.pid)
    }

    fn start_at_once(
        &self,
        id: &str,
        bundle: &Path,
        options: &CreateOptions,
        attached: bool,
    ) -> Result<Spawned> {
        let spawned =
            self.claim_and_spawn(id, bundle, options, attached, |_| Ok(Handover::Exec))?;
        self.run_poststart(id)?;
        Ok(spawned)
    }

    /// Poststart hooks run once the user's process has started; their failures are only
    /// logged, as the spec says.
    fn run_poststart(&self, id: &str) -> Result<()> {
        let saved = self.root.load(id)?;
        let hooks = crate::hooks::of_kind(saved.hooks.as_ref(), Hooks::poststart);
        crate::hooks::run_all_warn(hooks, &saved.report(Status::Running));
        Ok(())
    }

    /// Claims the state directory of `id`, spawns init with the handover `prepare` makes
    /// in it, and gives the directory back if anything fails.
    fn claim_and_spawn(
        &self,
        id: &str,
        bundle: &Path,
        options: &CreateOptions,
        attached: bool,
        prepare: impl FnOnce(&Path) -> Result<Handover>,
    ) -> Result<Spawned> {
        let dir = self.root.claim(id)?;
        prepare(&dir)
            .and_then(|handover| self.spawn(id, bundle, options, attached, handover))
            .inspect_err(|_| {
                let _ = self.root.remove(id);
            })
    }

    fn spawn(
        &self,
        id: &str,
        bundle_dir: &Path,
        options: &CreateOptions,
        attached: bool,
        handover: Handover,
    ) -> Result<Spawned> {
        let bundle = Bundle::load(bundle_dir)?;
        if options.no_pivot {
            crate::mounts::refuse_private_without_pivot(&bundle.spec)?;
        }
        let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal());
        let (console, our_console) =
            console_ends(terminal, options.console_socket.as_deref(), attached)?;
        let linux = bundle.spec.linux().as_ref();
        let cgroup_path = linux
            .and_then(|l| l.cgroups_path().clone())
            .map_or_else(|| format!("/berth/{id}"), |p| p.display().to_string());
        let seccomp = self.seccomp_program(linux.and_then(|l| l.seccomp().as_ref()))?;
        let (new_namespaces, joins) = namespaces(&bundle)?;
        let (parent_sock, child_sock) = sync_pair()?;
        let clone_flags = new_namespaces & !CloneFlags::CLONE_NEWCGROUP;
        // SAFETY: a raw clone with fork semantics (no new stack): the child runs `init::run`,
        // which never returns. The runtime is single-threaded at this point.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                clone_flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                0,
                0,
                0,
                0,
            )
        };
        let pid =
            nix::errno::Errno::result(pid).or_sys(|| "clone the container's init".into())? as i32;
        if pid == 0 {
            drop(parent_sock);
            let config = InitConfig {
                bundle: &bundle,
                sync: child_sock,
                handover,
                cgroup_path: cgroup_path.clone(),
                joins,
                new_namespaces,
                seccomp: seccomp.as_ref(),
                console,
                no_pivot: options.no_pivot,
            };
            crate::init::run(config);
        }
        drop(child_sock);
        drop(console);
        let confirm_exec = matches!(handover, Handover::Exec);
        drop(handover);
        let cgroup = Cgroup::new(&cgroup_path);
        let started = self
            .finish_spawn(id, &bundle, &cgroup, pid, &parent_sock, options)
            .and_then(|()| {
                if confirm_exec {
                    expect_exec(&parent_sock)
                } else {
                    Ok(())
                }
            });
        if started.is_err() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            let _ = cgroup.remove();
        }
        started.map(|()| Spawned {
            pid,
            console: our_console,
        })
    }

    fn finish_spawn(
        &self,
        id: &str,
        bundle: &Bundle,
        cgroup: &Cgroup,
        pid: i32,
        sync: &OwnedFd,
        options: &CreateOptions,
    ) -> Result<()> {
        let linux = bundle.spec.linux().as_ref();
        cgroup.create(linux.and_then(|l| l.resources().as_ref()), pid)?;
        write_id_maps(bundle, pid)?;
        let saved = Saved {
            id: id.to_string(),
            pid,
            pid_start_time: pid_start_time(pid).unwrap_or(0),
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: now_rfc3339(),
            cgroup_path: cgroup.path().to_string(),
            annotations: bundle.spec.annotations().clone().unwrap_or_default(),
            hooks: bundle.spec.hooks().clone(),
            seccomp: linux.and_then(|l| l.seccomp().clone()),
        };
        nix::unistd::write(sync, &[MSG_GO]).or_sys(|| "signal init".into())?;
        if crate::hooks::need_creation_step(saved.hooks.as_ref()) {
            run_creation_hooks(sync, &saved)?;
        }
        expect_message(sync, MSG_READY)?;
        self.root.save(&saved)?;
        if let Some(pid_file) = &options.pid_file {
            std::fs::write(pid_file, pid.to_string()).at(pid_file)?;
        }
        Ok(())
    }

    /// Lets a created container's init exec the user's process.
    pub fn start(&self, id: &str) -> Result<()> {
        let saved = self.load_when(id, "start", |s| s == Status::Created)?;
        let fifo = self.root.container_dir(id).join(EXEC_FIFO);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .at(&fifo)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut byte = [0u8; 1];
        loop {
            match nix::unistd::read(file.as_raw_fd(), &mut byte) {
                Ok(1) => break,
                Ok(_) | Err(nix::errno::Errno::EAGAIN)
                    if Instant::now() < deadline && pid_start_time(saved.pid).is_some() =>
                {
                    std::thread::sleep(Duration::from_micros(100));
                }
                _ => {
                    return Err(Error::Init(format!(
                        "container {id}'s init did not take the start signal"
                    )));
                }
            }
        }
        let outcome = read_exec_outcome(file);
        std::fs::remove_file(&fifo).at(&fifo)?;
        outcome?;
        self.run_poststart(id)
    }

    /// The container's state as `state` prints it.
    pub fn state(&self, id: &str) -> Result<StateReport> {
        let saved = self.root.load(id)?;
        Ok(self.report(&saved))
    }

    fn report(&self, saved: &Saved) -> StateReport {
        let mut report = saved.report(self.status(saved));
        report.oom_killed = Cgroup::new(&saved.cgroup_path).oom_kills() > 0;
        report
    }

    /// The container's usage (CPU, memory, pids) as its cgroup reports it now.
    pub fn stats(&self, id: &str) -> Result<Stats> {
        let saved = self.root.load(id)?;
        Ok(Cgroup::new(&saved.cgroup_path).stats())
    }

    fn status(&self, saved: &Saved) -> Status {
        if pid_start_time(saved.pid) != Some(saved.pid_start_time) {
            Status::Stopped
        } else if self.root.container_dir(&saved.id).join(EXEC_FIFO).exists() {
            Status::Created
        } else if Cgroup::new(&saved.cgroup_path).is_frozen() {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// Every container's state, sorted by id.
    pub fn list(&self) -> Result<Vec<StateReport>> {
        let ids = self.root.ids()?;
        Ok(ids
            .iter()
            .filter_map(|id| self.root.load(id).ok())
            .map(|s| self.report(&s))
            .collect())
    }

    /// Sends `signal` to init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let saved = self.load_when(id, "kill", |s| s != Status::Stopped)?;
        let pids = if all {
            Cgroup::new(&saved.cgroup_path).pids()
        } else {
            vec![saved.pid]
        };
        for pid in pids {
            nix::sys::signal::kill(Pid::from_raw(pid), signal)
                .or_sys(|| format!("send {signal} to {pid}"))?;
        }
        Ok(())
    }

    /// Deletes the container: refuses a running one unless `force`, which kills it first.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let saved = self.root.load(id)?;
        let status = self.status(&saved);
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(Error::WrongState {
                action: "delete",
                id: id.to_string(),
                status: format!("not stopped: {status}"),
            });
        }
        let cgroup = Cgroup::new(&saved.cgroup_path);
        if status != Status::Stopped {
            if status == Status::Paused {
                cgroup.freeze(false)?;
            }
            for pid in cgroup.pids().into_iter().chain([saved.pid]) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            // Reap it if it is ours; otherwise wait for whoever is its parent to.
            let _ = nix::sys::wait::waitpid(
                Pid::from_raw(saved.pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
        remove_cgroup_when_empty(&cgroup)?;
        let poststop = crate::hooks::of_kind(saved.hooks.as_ref(), Hooks::poststop);
        crate::hooks::run_all_warn(poststop, &saved.report(Status::Stopped));
        self.root.remove(id)
    }

    /// Freezes every process of the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let saved = self.load_when(id, "pause", |s| s == Status::Running)?;
        Cgroup::new(&saved.cgroup_path).freeze(true)
    }

    /// Changes the resource limits of a created, running or paused container (`runc
    /// update`): only what `resources` sets.
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let saved = self.load_when(id, "update", |s| s != Status::Stopped)?;
        Cgroup::new(&saved.cgroup_path).update(resources)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let saved = self.load_when(id, "resume", |s| s == Status::Paused)?;
        Cgroup::new(&saved.cgroup_path).freeze(false)
    }

    /// Loads the record of `id`, refusing `action` unless its status passes `allowed`.
    fn load_when(
        &self,
        id: &str,
        action: &'static str,
        allowed: impl Fn(Status) -> bool,
    ) -> Result<Saved> {
        let saved = self.root.load(id)?;
        let status = self.status(&saved);
        if !allowed(status) {
            return Err(Error::WrongState {
                action,
                id: id.to_string(),
                status: status.to_string(),
            });
        }
        Ok(saved)
    }

    /// Runs `process` inside the running container `id`: in its namespaces and cgroup,
    /// as the process spec says. Returns its exit status, or at once with its host pid as
    /// the status when `detach` is set.
    pub fn exec(&self, id: &str, process: &Process, options: &ExecOptions) -> Result<i32> {
        let saved = self.load_when(id, "exec in", |s| {
            matches!(s, Status::Created | Status::Running)
        })?;
        let seccomp = self.seccomp_program(saved.seccomp.as_ref())?;
        let (console, our_console) = console_ends(
            process.terminal(),
            options.console_socket.as_deref(),
            !options.detach,
        )?;
        let joins = container_namespaces(saved.pid)?;
        let (parent_sock, child_sock) = sync_pair()?;
        // SAFETY: fork of a single-threaded runtime; the child only returns through exit.
        let child = unsafe { nix::unistd::fork() }.or_sys(|| "fork for exec".into())?;
        if let nix::unistd::ForkResult::Child = child {
            drop(parent_sock);
            exec_child(ExecChild {
                sync: child_sock,
                joins: &joins,
                process,
                seccomp: seccomp.as_ref(),
                console,
                detach: options.detach,
            });
        }
        drop(child_sock);
        drop(console);
        let child = match child {
            nix::unistd::ForkResult::Parent { child } => child,
            nix::unistd::ForkResult::Child => unreachable!("the child never returns"),
        };
        let outcome = Cgroup::new(&saved.cgroup_path)
            .add(child.as_raw())
            .and_then(|()| {
                nix::unistd::write(&parent_sock, &[MSG_GO])
                    .map(|_| ())
                    .or_sys(|| "signal exec".into())
            })
            .and_then(|()| read_exec_start(&parent_sock))
            .and_then(|pid| expect_exec(&parent_sock).map(|()| pid));
        let pid = match outcome {
            Ok(pid) => pid,
            Err(error) => {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(error);
            }
        };
        if let Some(pid_file) = &options.pid_file {
            std::fs::write(pid_file, pid.to_string()).at(pid_file)?;
        }
        if let Some(console) = our_console {
            // SAFETY: the caller hands this descriptor over for the relay's use alone.
            let resizes = options
                .resize_fd
                .map(|fd| unsafe { std::fs::File::from_raw_fd(fd) });
            crate::console::relay(crate::console::receive_master(&console)?, resizes);
        }
        let code = wait_exit(child.as_raw());
        Ok(if options.detach { pid } else { code })
    }

    /// The compiled filter of a container's seccomp profile, if it has one.
    fn seccomp_program(&self, profile: Option<&LinuxSeccomp>) -> Result<Option<Program>> {
        profile
            .map(|p| crate::seccomp::program(p, &self.root.seccomp_cache()))
            .transpose()
    }

    /// Host pids of every process of the container.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let saved = self.root.load(id)?;
        Ok(Cgroup::new(&saved.cgroup_path).pids())
    }
}

fn open_path(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .or_sys(|| format!("open {}", path.display()))?;
    // SAFETY: a fresh descriptor from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The runtime's and the child's ends of the close-on-exec sync socket.
fn sync_pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .or_sys(|| "socketpair".into())
}

/// New namespaces to create, and existing ones (given by path) to join.
fn namespaces(bundle: &Bundle) -> Result<(CloneFlags, Vec<(OwnedFd, CloneFlags)>)> {
    let mut new = CloneFlags::empty();
    let mut joins = Vec::new();
    for ns in bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .into_iter()
        .flatten()
    {
        let flag = clone_flag(ns.typ());
        match ns.path() {
            None => new |= flag,
            Some(path) => {
                let fd = open_path_readable(path)?;
                if flag == CloneFlags::CLONE_NEWPID {
                    // Joining a pid namespace applies to children: do it here, before the clone.
                    nix::sched::setns(&fd, flag)
                        .or_sys(|| format!("join pid namespace {}", path.display()))?;
                } else {
                    joins.push((fd, flag));
                }
            }
        }
    }
    // Joining the user namespace first grants the rights to join the others.
    joins.sort_by_key(|(_, kind)| *kind != CloneFlags::CLONE_NEWUSER);
    Ok((new, joins))
}

fn open_path_readable(path: &Path) -> Result<OwnedFd> {
    let file = std::fs::File::open(path).at(path)?;
    Ok(OwnedFd::from(file))
}

fn write_id_maps(bundle: &Bundle, pid: i32) -> Result<()> {
    let Some(linux) = bundle.spec.linux().as_ref() else {
        return Ok(());
    };
    let format = |maps: &[oci_spec::runtime::LinuxIdMapping]| -> String {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    if let Some(maps) = linux.uid_mappings().as_ref().filter(|m| !m.is_empty()) {
        let path = format!("/proc/{pid}/uid_map");
        std::fs::write(&path, format(maps)).at(path)?;
    }
    if let Some(maps) = linux.gid_mappings().as_ref().filter(|m| !m.is_empty()) {
        let path = format!("/proc/{pid}/gid_map");
        std::fs::write(&path, format(maps)).at(path)?;
    }
    Ok(())
}

/// Runs prestart and createRuntime hooks, in the runtime's namespaces, once init has made
/// the container's mounts and asks for them; then hands init the state for its own
/// createContainer and startContainer hooks.
fn run_creation_hooks(sync: &OwnedFd, saved: &Saved) -> Result<()> {
    expect_message(sync, MSG_HOOKS)?;
    let state = crate::hooks::state_json(&saved.report(Status::Creating));
    for kind in [Hooks::prestart, Hooks::create_runtime] {
        crate::hooks::run_all(crate::hooks::of_kind(saved.hooks.as_ref(), kind), &state)?;
    }
    let mut message = vec![MSG_GO];
    message.extend_from_slice(&state);
    nix::unistd::write(sync, &message)
        .map(|_| ())
        .or_sys(|| "hand init the state".into())
}

/// Waits for the one-byte message `expected` from init, or turns its error report (or
/// silence) into an error.
fn expect_message(sync: &OwnedFd, expected: u8) -> Result<()> {
    let mut buffer = vec![0u8; 4096];
    let n = nix::unistd::read(sync.as_raw_fd(), &mut buffer).or_sys(|| "read from init".into())?;
    match buffer.first() {
        Some(&byte) if byte == expected && n == 1 => Ok(()),
        Some(&MSG_ERROR) if n > 0 => Err(Error::Init(
            String::from_utf8_lossy(&buffer[1..n]).into_owned(),
        )),
        _ => Err(Error::Init("init exited without saying why".into())),
    }
}

/// The namespaces of `pid` that differ from the runtime's own, user first: entering the
/// user namespace grants the rights to enter the others, and the mount namespace last
/// but one keeps /proc/<pid> reachable while the others are opened.
fn container_namespaces(pid: i32) -> Result<Vec<(OwnedFd, CloneFlags)>> {
    let kinds = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    let mut joins = Vec::new();
    for (name, flag) in kinds {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        if std::fs::read_link(&theirs).ok() != std::fs::read_link(&ours).ok() {
            joins.push((open_path_readable(&theirs)?, flag));
        }
    }
    Ok(joins)
}

/// What the forked child of `exec` needs.
struct ExecChild<'a> {
    sync: OwnedFd,
    joins: &'a [(OwnedFd, CloneFlags)],
    process: &'a Process,
    seccomp: Option<&'a Program>,
    console: Option<OwnedFd>,
    detach: bool,
}

/// The forked child of `exec`: joins the namespaces, forks once more so that the process
/// is inside the pid namespace, reports its pid, and waits for it unless detached.
fn exec_child(child: ExecChild) -> ! {
    let raw = child.sync.as_raw_fd();
    crate::init::report_and_exit(raw, move || {
        let sync = child.sync;
        crate::sealed_exe::make_non_dumpable()?;
        let mut go = [0u8; 1];
        if nix::unistd::read(sync.as_raw_fd(), &mut go) != Ok(1) || go[0] != MSG_GO {
            return Err(Error::Init(
                "the runtime went away before exec could start".into(),
            ));
        }
        for (fd, kind) in child.joins {
            nix::sched::setns(fd, *kind).or_sys(|| format!("join {kind:?} namespace"))?;
        }
        // SAFETY: fork of a single-threaded process.
        match unsafe { nix::unistd::fork() }.or_sys(|| "fork into the pid namespace".into())? {
            nix::unistd::ForkResult::Child => {
                let mut prepared = crate::init::prepare_process(child.process)?;
                if let Some(console) = &child.console {
                    prepared.open_terminal(console, child.process)?;
                }
                crate::init::send(&sync, MSG_READY)?;
                crate::init::exec_process(child.process, &prepared, child.seccomp)
            }
            nix::unistd::ForkResult::Parent { child: pid } => {
                let mut message = vec![MSG_PID];
                message.extend_from_slice(&pid.as_raw().to_le_bytes());
                nix::unistd::write(&sync, &message).or_sys(|| "report the exec pid".into())?;
                drop(sync);
                drop(child.console);
                // Every other descriptor goes too, report_and_exit's duplicate of the
                // sync socket among them: the runtime learns that the process has
                // exec'd from the end of that socket, and with a terminal it relays
                // nothing until then, so a long-lived process would never be relayed.
                // SAFETY: close_range with integer arguments; nothing here uses a
                // descriptor above stderr again.
                unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
                let code = if child.detach {
                    0
                } else {
                    wait_exit(pid.as_raw())
                };
                // SAFETY: ends this helper with the process's status.
                unsafe { libc::_exit(code) }
            }
        }
    })
}

/// The console socket init sends the terminal to, and our end of it when we relay the
/// terminal ourselves (a foreground `run` or `exec` without `--console-socket`).
fn console_ends(
    terminal: Option<bool>,
    socket: Option<&Path>,
    attached: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let field = |reason: &str| Error::Field {
        field: "process.terminal".into(),
        reason: reason.into(),
    };
    match (terminal.unwrap_or(false), socket) {
        (false, None) => Ok((None, None)),
        (false, Some(_)) => Err(field(
            "is false, but a console socket was given: only a terminal is sent there",
        )),
        (true, Some(path)) => Ok((Some(crate::console::connect(path)?), None)),
        (true, None) if attached => {
            let (ours, theirs) = crate::console::private_pair()?;
            Ok((Some(theirs), Some(ours)))
        }
        (true, None) => Err(field(
            "is true: a detached container needs --console-socket to hand its terminal to",
        )),
    }
}

/// Reads the exec'd process's host pid (from the helper) and its READY (from the process
/// itself), or the error that came instead. The two come from different processes, so
/// either may arrive first.
fn read_exec_start(sync: &OwnedFd) -> Result<i32> {
    let mut buffer = vec![0u8; 4096];
    let (mut pid, mut ready) = (None, false);
    while pid.is_none() || !ready {
        let n =
            nix::unistd::read(sync.as_raw_fd(), &mut buffer).or_sys(|| "read from exec".into())?;
        match buffer.first() {
            Some(&MSG_PID) if n == 5 && pid.is_none() => {
                pid = Some(i32::from_le_bytes([
                    buffer[1], buffer[2], buffer[3], buffer[4],
                ]));
            }
            Some(&MSG_READY) if n == 1 && !ready => ready = true,
            Some(&MSG_ERROR) if n > 0 => {
                return Err(Error::Init(
                    String::from_utf8_lossy(&buffer[1..n]).into_owned(),
                ));
            }
            _ => {
                return Err(Error::Init(
                    "exec's helper exited without saying why".into(),
                ));
            }
        }
    }
    pid.ok_or_else(|| Error::Init("exec's helper sent no pid".into()))
}

/// After READY, init of `run` goes on to exec: the socket closes at a successful exec
/// (it is close-on-exec), or carries the error of a failed one.
fn expect_exec(sync: &OwnedFd) -> Result<()> {
    let mut buffer = vec![0u8; 4096];
    match nix::unistd::read(sync.as_raw_fd(), &mut buffer) {
        Ok(n) if n > 1 && buffer[0] == MSG_ERROR => Err(Error::Init(
            String::from_utf8_lossy(&buffer[1..n]).into_owned(),
        )),
        _ => Ok(()),
    }
}

/// After the start signal, init keeps the fifo open until its exec closes it, or writes
/// why it could not get there: read to the end to learn which.
fn read_exec_outcome(fifo: std::fs::File) -> Result<()> {
    use std::io::Read;
    nix::fcntl::fcntl(
        fifo.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .or_sys(|| "make the exec fifo blocking".into())?;
    let mut report = Vec::new();
    (&fifo)
        .read_to_end(&mut report)
        .map_err(|e| Error::Init(format!("read the exec fifo: {e}")))?;
    match report.split_first() {
        Some((&MSG_ERROR, text)) => Err(Error::Init(String::from_utf8_lossy(text).into_owned())),
        _ => Ok(()),
    }
}

/// Waits for `pid` and maps its end to a shell-style status.
fn wait_exit(pid: i32) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
            Err(_) => return 255,
        }
    }
}

/// A cgroup can only be removed once the kernel has finished tearing down its processes.
fn remove_cgroup_when_empty(cgroup: &Cgroup) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cgroup.remove() {
            Err(Error::Io { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}
