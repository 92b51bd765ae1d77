//! Container lifecycle in the engine: create (record and resolve the process against the
//! image), start (overlay root, runtime spec, a monitor process), wait, stop, kill and
//! remove. Records live in `<data>/containers/<id>/container.json`; state changes wake
//! every waiter through one condition variable.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::health::HealthConfig;
use crate::model::{Container, CreateRequest, State, Status};
use crate::monitor::{EXIT_FILE, ExitRecord, LOG_FILE};
use crate::networks::Sandbox;
use crate::rootfs::Overlay;
use crate::{Engine, Error, Result};

/// Seconds `stop` waits for the stop signal to work when neither the client nor the
/// container's `--stop-timeout` says, as Docker.
const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// How many removed containers' exit statuses are kept for `wait`s that wake late.
const REMEMBERED_EXITS: usize = 256;

/// What `wait` waits for (`docker wait`'s `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if not running, else at its exit.
    NotRunning,
    /// The next exit from now.
    NextExit,
    /// Its removal.
    Removed,
}

/// The containers of an engine and the lock that guards them.
#[derive(Debug, Default)]
pub(crate) struct Containers {
    records: Mutex<BTreeMap<String, Container>>,
    changed: Condvar,
    /// The last exit status of the most recently removed containers: a `wait` for
    /// removal (`docker run --rm`) may wake only after the record is gone.
    exit_codes: Mutex<std::collections::VecDeque<(String, i32)>>,
    /// Containers a start is under way for, claimed under the records' lock: two starts
    /// of one container (an API start and a restart-policy one) must not both launch it.
    starting: Mutex<std::collections::BTreeSet<String>>,
}

/// A start under way, from [`Containers::claim_start`]; released on drop, after the
/// start has recorded its outcome.
struct StartClaim<'a> {
    containers: &'a Containers,
    id: String,
}

impl Drop for StartClaim<'_> {
    fn drop(&mut self) {
        self.containers.starting().remove(&self.id);
    }
}

impl Containers {
    /// Loads every record under `dir`.
    pub(crate) fn load(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::Io(dir.to_path_buf(), e))?
            .flatten()
        {
            let path = entry.path().join("container.json");
            if let Ok(data) = std::fs::read(&path)
                && let Ok(container) = serde_json::from_slice::<Container>(&data)
            {
                records.insert(container.id.clone(), container);
            }
        }
        Ok(Self {
            records: Mutex::new(records),
            changed: Condvar::new(),
            exit_codes: Mutex::default(),
            starting: Mutex::default(),
        })
    }

    fn starting(&self) -> MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.starting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The container `name` stands for and the right to start it, or None when it runs
    /// or another start of it is under way. Both are decided under the records' lock,
    /// where a start records its outcome.
    fn claim_start(&self, name: &str) -> Result<Option<(Container, StartClaim<'_>)>> {
        let records = self.lock();
        let container = find(&records, name)?.clone();
        if container.state.status == Status::Running
            || !self.starting().insert(container.id.clone())
        {
            return Ok(None);
        }
        let claim = StartClaim {
            containers: self,
            id: container.id.clone(),
        };
        Ok(Some((container, claim)))
    }

    /// Keeps a removed container's exit status for late waiters, the last
    /// [`REMEMBERED_EXITS`] of them.
    fn remember_exit(&self, container: &Container) {
        let mut codes = self
            .exit_codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if codes.len() == REMEMBERED_EXITS {
            codes.pop_front();
        }
        codes.push_back((container.id.clone(), container.state.exit_code));
    }

    fn removed_exit(&self, id: &str) -> Option<i32> {
        let codes = self
            .exit_codes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        codes
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, code)| *code)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Container>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Engine {
    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("containers").join(id)
    }

    /// The json-file log of a container.
    pub fn log_path(&self, container: &Container) -> PathBuf {
        self.container_dir(&container.id).join(LOG_FILE)
    }

    /// Every container (`all`) or the running ones, newest first.
    pub fn containers(&self, all: bool) -> Vec<Container> {
        let mut list: Vec<Container> = self
            .containers
            .lock()
            .values()
            .filter(|c| all || c.state.status == Status::Running)
            .cloned()
            .collect();
        list.sort_by(|a, b| b.created.cmp(&a.created));
        list
    }

    /// The container a name stands for: its name, its id, or a unique id prefix.
    pub fn container(&self, name: &str) -> Result<Container> {
        find(&self.containers.lock(), name).cloned()
    }

    /// Records a new container from `request`; nothing runs yet.
    pub fn create_container(
        &self,
        name: Option<&str>,
        request: CreateRequest,
    ) -> Result<Container> {
        self.create_record(name, request, None)
    }

    /// Records a new container, in the pod sandbox `pod_sandbox` when given.
    pub(crate) fn create_record(
        &self,
        name: Option<&str>,
        mut request: CreateRequest,
        pod_sandbox: Option<String>,
    ) -> Result<Container> {
        let image = self.images.resolve(&request.image)?;
        let config = self.images.config(&image)?;
        if request.stop_signal.is_empty() {
            // The image's STOPSIGNAL, as Docker takes it.
            request.stop_signal = non_empty("", &config["config"]["StopSignal"]);
        }
        let (path, args) = process_args(&request, &config["config"])?;
        self.check_mounts(&request)?;
        crate::settings::check(&request)?;
        crate::etc::check(&request.host_config)?;
        self.check_name_settings(&request)?;
        crate::logs::Rotation::of(&request.host_config.log_config)?;
        let policy = request.host_config.restart_policy.name.as_str();
        if request.host_config.auto_remove && !matches!(policy, "" | "no") {
            return Err(Error::Invalid(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        let id = random_hex(32)?;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(name) => valid_name(name.trim_start_matches('/'))?,
            None => format!("berth_{}", &id[..8]),
        };
        let container = Container {
            id: id.clone(),
            name,
            image_id: image.id.to_string(),
            image: request.image.clone(),
            path,
            args,
            env: environment(&request, &config["config"]),
            working_dir: non_empty(&request.working_dir, &config["config"]["WorkingDir"]),
            user: non_empty(&request.user, &config["config"]["User"]),
            anonymous_volumes: crate::volumes::anonymous_volumes(&request, &config["config"])?,
            request,
            created: berth_runtime::state::now_rfc3339(),
            pod_sandbox,
            state: State::default(),
        };
        let mut records = self.containers.lock();
        if let Some(other) = records.values().find(|c| c.name == container.name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                container.name, other.id
            )));
        }
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e))?;
        // The log exists from the start, so an attach made before `start` can hold it
        // open and still read it all if `--rm` removes the directory at the exit.
        let log = dir.join(LOG_FILE);
        std::fs::File::create(&log).map_err(|e| Error::Io(log, e))?;
        self.save(&container)?;
        records.insert(id, container.clone());
        drop(records);
        self.emit_container(&container, "create", &[]);
        Ok(container)
    }

    /// Starts a created or exited container: mounts its root, writes its spec and
    /// hands it to a monitor process. Returns `false` when it was already running.
    pub fn start_container(self: &Arc<Self>, name: &str) -> Result<bool> {
        self.start(name, false)
    }

    /// Starts a container for the user, or for its restart policy (`by_policy`): a
    /// policy start that a stop overtook is undone at once.
    fn start(self: &Arc<Self>, name: &str, by_policy: bool) -> Result<bool> {
        let Some((container, _claim)) = self.containers.claim_start(name)? else {
            return Ok(false);
        };
        let dir = self.container_dir(&container.id);
        let image = self.images.resolve(&container.image_id)?;
        let overlay = Overlay::of(&dir);
        overlay.mount(&self.images.layer_dirs(&image))?;
        let started = self.launch(&container, &overlay);
        let mut records = self.containers.lock();
        let Some(record) = records.get_mut(&container.id) else {
            return Err(Error::NoSuchContainer(name.to_string()));
        };
        record.state.restarting = false;
        match started {
            Ok((pid, monitor, sandbox)) => {
                if by_policy && record.state.stopped_by_user {
                    let _ = self
                        .runtime()
                        .map(|r| r.kill(&container.id, nix::sys::signal::Signal::SIGKILL, true));
                }
                record.state.status = Status::Running;
                record.state.pid = pid;
                record.state.started_at = berth_runtime::state::now_rfc3339();
                record.state.error.clear();
                record.state.stopped_by_user &= by_policy;
                record.state.sandbox = sandbox.netns.filter(|_| sandbox.owned);
                record.state.endpoint = sandbox.endpoint;
                record.state.extra_endpoints = sandbox.extra_endpoints;
                self.save(record)?;
                let started = record.clone();
                drop(records);
                self.refresh_names();
                for endpoint in started.state.endpoints() {
                    self.emit_network(&endpoint.network_id, "connect", Some(&started.id));
                }
                self.emit_container(&started, "start", &[]);
                self.containers.changed.notify_all();
                let image_config = self.images.config(&image).unwrap_or_default();
                if let Some(check) = HealthConfig::of(&container, &image_config["config"]) {
                    self.watch_health(&container, check);
                }
                let engine = Arc::clone(self);
                let id = container.id.clone();
                std::thread::spawn(move || {
                    let mut monitor = monitor;
                    let _ = monitor.wait();
                    engine.finish(&id);
                });
                Ok(true)
            }
            Err(error) => {
                record.state.error = error.to_string();
                let _ = self.save(record);
                let auto_remove = record.request.host_config.auto_remove;
                drop(records);
                self.containers.changed.notify_all();
                let _ = overlay.unmount();
                // A `--rm` container that cannot start goes too: its client waits for that.
                if auto_remove {
                    let _ = self.remove_container(&container.id, true);
                }
                Err(error)
            }
        }
    }

    /// Sets up the container's network, then spawns its monitor; the network is undone
    /// if the container does not start.
    fn launch(
        &self,
        container: &Container,
        overlay: &Overlay,
    ) -> Result<(i32, std::process::Child, Sandbox)> {
        let sandbox = self.connect(container)?;
        match self.spawn_monitor(container, overlay, &sandbox) {
            Ok((pid, monitor)) => Ok((pid, monitor, sandbox)),
            Err(error) => {
                if sandbox.owned {
                    self.disconnect(&container.id, &sandbox.netns, sandbox.endpoints());
                }
                Err(error)
            }
        }
    }

    /// Writes the etc files and the spec, then spawns the monitor and reads its verdict.
    fn spawn_monitor(
        &self,
        container: &Container,
        overlay: &Overlay,
        sandbox: &Sandbox,
    ) -> Result<(i32, std::process::Child)> {
        let dir = self.container_dir(&container.id);
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc).map_err(|e| Error::Io(etc.clone(), e))?;
        let hostname = hostname_of(container);
        let own_addresses: Vec<String> = match &container.pod_sandbox {
            Some(pod) => self.sandbox_addresses(pod),
            None => sandbox.endpoints().map(|e| e.ip.to_string()).collect(),
        };
        let gateway = self.host_gateway();
        let host = &container.request.host_config;
        for (file, text) in [
            ("hostname", format!("{hostname}\n")),
            (
                "hosts",
                crate::etc::hosts(host, &host_names_of(container), &own_addresses, gateway)?,
            ),
            (
                "resolv.conf",
                crate::etc::resolv_conf(host, &sandbox.resolv_conf),
            ),
        ] {
            std::fs::write(etc.join(file), text).map_err(|e| Error::Io(etc.join(file), e))?;
        }
        let mut spec = crate::spec::runtime_spec(
            container,
            &overlay.target,
            &etc,
            &self.cgroup_parent_of(container),
            sandbox.netns.as_deref(),
        )?;
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            mounts.extend(self.container_mounts(container)?);
        }
        if container.request.host_config.init == Some(true) {
            crate::spec::add_init(&mut spec, self.init_path.as_deref())?;
        }
        if let Some(pod) = &container.pod_sandbox {
            self.join_sandbox(&mut spec, pod)?;
        }
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&spec).unwrap_or_default(),
        )
        .map_err(|e| Error::Io(config, e))?;
        let _ = std::fs::remove_file(dir.join(EXIT_FILE));
        let mut command = Command::new(&self.berth_binary);
        command
            .arg("monitor")
            .arg(&self.runtime_root)
            .arg(&dir)
            .arg(&container.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Its own process group: a signal to the daemon's group does not reach it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut monitor = command
            .spawn()
            .map_err(|e| Error::Io(self.berth_binary.clone(), e))?;
        let mut line = String::new();
        if let Some(stdout) = monitor.stdout.take() {
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        match line.trim_end().split_once(' ') {
            Some(("started", pid)) => Ok((pid.parse().unwrap_or(0), monitor)),
            Some(("error", message)) => {
                let _ = monitor.wait();
                Err(Error::Start(message.to_string()))
            }
            _ => {
                let _ = monitor.wait();
                Err(Error::Start(
                    "the container monitor exited without a word".into(),
                ))
            }
        }
    }

    /// Watches the containers a previous daemon left running (live restore): their
    /// monitors still hold them; each end is recorded when its monitor writes the exit
    /// file, or, should a monitor have died, shortly after the container's process did.
    pub fn restore(self: &Arc<Self>) {
        self.restore_networks();
        for container in self.containers(false) {
            let engine = Arc::clone(self);
            std::thread::spawn(move || engine.watch(&container));
        }
    }

    fn watch(self: &Arc<Self>, container: &Container) {
        let exit_file = self.container_dir(&container.id).join(EXIT_FILE);
        let pid = nix::unistd::Pid::from_raw(container.state.pid);
        let mut gone_since: Option<Instant> = None;
        loop {
            if exit_file.exists() {
                break;
            }
            let alive = container.state.pid > 0 && nix::sys::signal::kill(pid, None).is_ok();
            let gone = *gone_since.get_or_insert_with(Instant::now);
            if alive {
                gone_since = None;
            } else if gone.elapsed() > Duration::from_secs(2) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.finish(&container.id);
    }

    /// Records the end of a run from the monitor's exit file; then removes a `--rm`
    /// container, or restarts one whose restart policy asks for it.
    fn finish(self: &Arc<Self>, id: &str) {
        let dir = self.container_dir(id);
        let exit: Option<ExitRecord> = std::fs::read(dir.join(EXIT_FILE))
            .ok()
            .and_then(|data| serde_json::from_slice(&data).ok());
        let _ = Overlay::of(&dir).unmount();
        let mut records = self.containers.lock();
        let Some(record) = records.get_mut(id) else {
            return;
        };
        record.state.status = Status::Exited;
        record.state.pid = 0;
        record.state.paused = false;
        record.state.exits += 1;
        match exit {
            Some(exit) => {
                record.state.exit_code = exit.code;
                record.state.oom_killed = exit.oom_killed;
                record.state.finished_at = exit.finished_at;
            }
            None => {
                record.state.exit_code = 255;
                record.state.finished_at = berth_runtime::state::now_rfc3339();
            }
        }
        let sandbox = record.state.sandbox.take();
        let endpoints = record.state.take_endpoints();
        let auto_remove = record.request.host_config.auto_remove;
        let policy = &record.request.host_config.restart_policy;
        let restart = policy.restarts(
            record.state.exit_code,
            record.state.restart_count,
            record.state.stopped_by_user,
        );
        let restarts = record.state.restart_count;
        let _ = self.save(record);
        let ended = record.clone();
        drop(records);
        self.disconnect(id, &sandbox, &endpoints);
        self.refresh_names();
        for endpoint in &endpoints {
            self.emit_network(&endpoint.network_id, "disconnect", Some(id));
        }
        if ended.state.oom_killed {
            self.emit_container(&ended, "oom", &[]);
        }
        self.emit_container(
            &ended,
            "die",
            &[("exitCode", ended.state.exit_code.to_string())],
        );
        self.containers.changed.notify_all();
        if auto_remove {
            let _ = self.remove_container(id, false);
        } else if restart {
            self.restart_later(id, restarts);
        }
    }

    /// Restarts after Docker's back-off: 100 ms, doubling with each restart, at most a
    /// minute.
    fn restart_later(self: &Arc<Self>, id: &str, restarts: u64) {
        let delay =
            Duration::from_millis(100 * (1u64 << restarts.min(10))).min(Duration::from_secs(60));
        let engine = Arc::clone(self);
        let id = id.to_string();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            // Checked and counted under the lock: a stop from now on overtakes the start.
            let still_wanted = engine.update(&id, |state| {
                let wanted = state.status == Status::Exited && !state.stopped_by_user;
                state.restart_count += u64::from(wanted);
                state.restarting = wanted;
                wanted
            });
            if still_wanted == Some(true)
                && let Err(error) = engine.start(&id, true)
            {
                tracing::warn!(%id, %error, "restart failed");
                engine.update(&id, |state| state.restarting = false);
                engine.containers.changed.notify_all();
            }
        });
    }

    /// Changes a container's state under the lock and saves it; None when it is gone.
    pub(crate) fn update<T>(&self, id: &str, change: impl FnOnce(&mut State) -> T) -> Option<T> {
        let mut records = self.containers.lock();
        let record = records.get_mut(id)?;
        let result = change(&mut record.state);
        let _ = self.save(record);
        Some(result)
    }

    /// Sends `signal` to the container's process; a restart policy then leaves the
    /// container down, as after `docker stop`.
    pub fn kill_container(&self, name: &str, signal: nix::sys::signal::Signal) -> Result<()> {
        let container = self.container(name)?;
        if container.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                container.id
            )));
        }
        self.update(&container.id, |state| state.stopped_by_user = true);
        self.runtime()?.kill(&container.id, signal, false)?;
        self.emit_container(
            &container,
            "kill",
            &[("signal", (signal as i32).to_string())],
        );
        Ok(())
    }

    /// The container's stop signal (`signal`, else its `--stop-signal`, else SIGTERM),
    /// then SIGKILL after `timeout` (else its `--stop-timeout`, else 10 s) if it still runs.
    pub fn stop_container(
        &self,
        name: &str,
        timeout: Option<Duration>,
        signal: Option<nix::sys::signal::Signal>,
    ) -> Result<()> {
        let id = self.container(name)?.id;
        // Also when it is down between restarts: the pending restart must not happen, and
        // one under way is let settle (it undoes itself on seeing the stop).
        self.update(&id, |state| state.stopped_by_user = true);
        self.wait_until(&id, Duration::from_secs(30), |c| {
            c.is_none_or(|c| !c.state.restarting)
        });
        let container = self.container(&id)?;
        if container.state.status != Status::Running {
            return Ok(());
        }
        let runtime = self.runtime()?;
        if container.state.paused {
            // Frozen processes take no signal: thaw them first, as Docker does.
            let _ = runtime.resume(&id);
            self.update(&id, |state| state.paused = false);
        }
        let signal = match signal {
            Some(signal) => signal,
            None => crate::settings::stop_signal(&container.request)?,
        };
        let timeout = timeout.unwrap_or_else(|| {
            Duration::from_secs(
                container
                    .request
                    .stop_timeout
                    .unwrap_or(DEFAULT_STOP_TIMEOUT),
            )
        });
        let _ = runtime.kill(&container.id, signal, false);
        self.emit_container(
            &container,
            "kill",
            &[("signal", (signal as i32).to_string())],
        );
        if !self.wait_until(&container.id, timeout, |c| {
            c.is_none_or(|c| c.state.status != Status::Running)
        }) {
            let _ = runtime.kill(&container.id, nix::sys::signal::Signal::SIGKILL, true);
            self.emit_container(&container, "kill", &[("signal", "9".into())]);
            self.wait_until(&container.id, Duration::from_secs(30), |c| {
                c.is_none_or(|c| c.state.status != Status::Running)
            });
        }
        self.emit_container(&container, "stop", &[]);
        Ok(())
    }

    /// `docker restart`: stop (SIGKILL after `timeout`), then start.
    pub fn restart_container(
        self: &Arc<Self>,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.stop_container(name, timeout, None)?;
        self.start_container(name)?;
        self.emit_container(&self.container(name)?, "restart", &[]);
        Ok(())
    }

    /// Removes a container; a running one only with `force`, which kills it first. Its
    /// anonymous volumes go too when it was run with `--rm`.
    pub fn remove_container(&self, name: &str, force: bool) -> Result<()> {
        self.remove(name, force, false)
    }

    /// Removes a container and its anonymous volumes (`docker rm -v`).
    pub fn remove_container_and_volumes(&self, name: &str, force: bool) -> Result<()> {
        self.remove(name, force, true)
    }

    fn remove(&self, name: &str, force: bool, volumes: bool) -> Result<()> {
        let container = self.container(name)?;
        if container.state.status == Status::Running {
            if !force {
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                    container.name
                )));
            }
            self.stop_container(&container.id, Some(Duration::ZERO), None)?;
        }
        let dir = self.container_dir(&container.id);
        Overlay::of(&dir).unmount()?;
        let mut records = self.containers.lock();
        let Some(removed) = records.remove(&container.id) else {
            return Ok(());
        };
        self.containers.remember_exit(&removed);
        drop(records);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::Io(dir, e))?;
        self.containers.changed.notify_all();
        self.emit_container(&container, "destroy", &[]);
        if volumes || removed.request.host_config.auto_remove {
            self.remove_anonymous_volumes(&removed);
        }
        Ok(())
    }

    /// Waits for `condition` and returns the exit status of the last run.
    pub fn wait_container(&self, name: &str, condition: WaitCondition) -> Result<i32> {
        let container = self.container(name)?;
        let exits = container.state.exits;
        self.wait_until(&container.id, Duration::MAX, |c| match (condition, c) {
            (_, None) => true,
            (WaitCondition::NotRunning, Some(c)) => c.state.status != Status::Running,
            (WaitCondition::NextExit, Some(c)) => c.state.exits > exits,
            (WaitCondition::Removed, Some(_)) => false,
        });
        Ok(self
            .containers
            .lock()
            .get(&container.id)
            .map(|c| c.state.exit_code)
            .or_else(|| self.containers.removed_exit(&container.id))
            .unwrap_or(container.state.exit_code))
    }

    /// Blocks until `done` holds for the container (None once removed) or `timeout`
    /// passes; returns whether it held.
    fn wait_until(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(Option<&Container>) -> bool,
    ) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut records = self.containers.lock();
        loop {
            if done(records.get(id)) {
                return true;
            }
            let wait = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => return false,
                },
                None => Duration::from_secs(3600),
            };
            records = self
                .containers
                .changed
                .wait_timeout(records, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Freezes (`pause`) or thaws (`unpause`) a running container's processes.
    pub fn pause_container(&self, name: &str, paused: bool) -> Result<()> {
        let container = self.container(name)?;
        if container.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                container.id
            )));
        }
        if container.state.paused == paused {
            let state = if paused {
                "already paused"
            } else {
                "not paused"
            };
            return Err(Error::Conflict(format!(
                "Container {} is {state}",
                container.id
            )));
        }
        let runtime = self.runtime()?;
        if paused {
            runtime.pause(&container.id)?;
        } else {
            runtime.resume(&container.id)?;
        }
        self.update(&container.id, |state| state.paused = paused);
        self.emit_container(&container, if paused { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// Gives a container a new name.
    pub fn rename_container(&self, name: &str, new_name: &str) -> Result<()> {
        let new_name = valid_name(new_name.trim_start_matches('/'))?;
        let mut records = self.containers.lock();
        let id = find(&records, name)?.id.clone();
        if let Some(other) = records.values().find(|c| c.name == new_name && c.id != id) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let Some(record) = records.get_mut(&id) else {
            return Err(Error::NoSuchContainer(name.to_string()));
        };
        let old_name = std::mem::replace(&mut record.name, new_name);
        self.save(record)?;
        let renamed = record.clone();
        drop(records);
        self.emit_container(&renamed, "rename", &[("oldName", format!("/{old_name}"))]);
        Ok(())
    }

    /// The processes of a running container: (pid, parent pid, uid, command line).
    pub fn container_processes(&self, name: &str) -> Result<Vec<(i32, i32, u32, String)>> {
        let container = self.container(name)?;
        if container.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                container.id
            )));
        }
        let pids = self.runtime()?.pids(&container.id)?;
        Ok(pids.into_iter().filter_map(process_info).collect())
    }

    /// A running container's usage from its cgroup (`docker stats`).
    pub fn container_stats(&self, name: &str) -> Result<crate::Stats> {
        let container = self.container(name)?;
        if container.state.status != Status::Running {
            return Ok(crate::Stats::default());
        }
        self.runtime()?.stats(&container.id).map_err(Error::from)
    }

    pub(crate) fn runtime(&self) -> Result<berth_runtime::Runtime> {
        berth_runtime::Runtime::new(&self.runtime_root).map_err(Error::from)
    }

    /// Writes a container's record (temp file, fsync, rename).
    pub(crate) fn save(&self, container: &Container) -> Result<()> {
        let path = self.container_dir(&container.id).join("container.json");
        let partial = path.with_extension("json.partial");
        let data = serde_json::to_vec_pretty(container).unwrap_or_default();
        std::fs::write(&partial, data)
            .and_then(|()| std::fs::File::open(&partial)?.sync_all())
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| Error::Io(path, e))
    }
}

/// Pid, parent pid, uid and command line of a host process, from /proc.
fn process_info(pid: i32) -> Option<(i32, i32, u32, String)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let command = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some((pid, field("PPid:")? as i32, field("Uid:")? as u32, command))
}

/// The container's host name: the one it was created with, else its short id.
pub(crate) fn hostname_of(container: &Container) -> &str {
    if container.request.hostname.is_empty() {
        &container.id[..12]
    } else {
        &container.request.hostname
    }
}

/// The names /etc/hosts gives the container's own addresses: its fully qualified name
/// first when it has a domain (`--domainname`, a pod's subdomain), then its host name.
pub(crate) fn host_names_of(container: &Container) -> String {
    let hostname = hostname_of(container);
    match container.request.domainname.as_str() {
        "" => hostname.to_string(),
        domain => format!("{hostname}.{domain}\t{hostname}"),
    }
}

pub(crate) fn find<'a>(
    records: &'a BTreeMap<String, Container>,
    name: &str,
) -> Result<&'a Container> {
    let name = name.trim_start_matches('/');
    if let Some(container) = records.values().find(|c| c.name == name || c.id == name) {
        return Ok(container);
    }
    let mut matches = records
        .values()
        .filter(|c| !name.is_empty() && c.id.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(container), None) => Ok(container),
        _ => Err(Error::NoSuchContainer(name.to_string())),
    }
}

/// Docker's rule: the request's Entrypoint replaces the image's and drops its Cmd; else
/// the request's Cmd replaces the image's Cmd after the image's Entrypoint.
fn process_args(request: &CreateRequest, image: &Value) -> Result<(String, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut full = match &request.entrypoint {
        Some(entrypoint) => {
            let mut full: Vec<String> = entrypoint
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect();
            full.extend(request.cmd.clone().unwrap_or_default());
            full
        }
        None => {
            let mut full = strings(&image["Entrypoint"]);
            match request.cmd.as_ref().filter(|c| !c.is_empty()) {
                Some(cmd) => full.extend(cmd.iter().cloned()),
                None => full.extend(strings(&image["Cmd"])),
            }
            full
        }
    };
    if full.is_empty() {
        return Err(Error::Invalid("no command specified".into()));
    }
    let path = full.remove(0);
    Ok((path, full))
}

/// The image's environment with the request's over it, key by key, and a PATH.
fn environment(request: &CreateRequest, image: &Value) -> Vec<String> {
    let mut env: Vec<String> = image["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    for pair in request.env.iter().flatten() {
        let key = pair.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(pair.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    env
}

fn non_empty(requested: &str, image: &Value) -> String {
    if requested.is_empty() {
        image.as_str().unwrap_or_default().to_string()
    } else {
        requested.to_string()
    }
}

/// Docker's rule for container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(crate) fn is_docker_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_name(name: &str) -> Result<String> {
    if is_docker_name(name) {
        Ok(name.to_string())
    } else {
        Err(Error::Invalid(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom")
            .map_err(|e| Error::Io("/dev/urandom".into(), e))?,
        &mut buffer,
    )
    .map_err(|e| Error::Io("/dev/urandom".into(), e))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(entrypoint: Option<Vec<&str>>, cmd: Option<Vec<&str>>) -> CreateRequest {
        CreateRequest {
            entrypoint: entrypoint.map(|e| e.into_iter().map(String::from).collect()),
            cmd: cmd.map(|c| c.into_iter().map(String::from).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_in_docker() {
        let image = json!({"Entrypoint": ["/entry"], "Cmd": ["default"]});
        let run = |r| process_args(&r, &image).unwrap();
        assert_eq!(
            run(request(None, None)),
            ("/entry".into(), vec!["default".into()])
        );
        assert_eq!(
            run(request(None, Some(vec!["x"]))),
            ("/entry".into(), vec!["x".into()])
        );
        assert_eq!(
            run(request(Some(vec!["/other"]), None)),
            ("/other".into(), vec![])
        );
        assert_eq!(
            run(request(Some(vec![""]), Some(vec!["sh"]))),
            ("sh".into(), vec![])
        );
        assert!(process_args(&request(None, None), &json!({})).is_err());
    }

    #[test]
    fn request_env_overrides_the_image_s_by_key() {
        let r = CreateRequest {
            env: Some(vec!["A=2".into(), "B=3".into()]),
            ..Default::default()
        };
        let env = environment(&r, &json!({"Env": ["PATH=/bin", "A=1"]}));
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }
}
