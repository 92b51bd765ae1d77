//! `docker exec`: a process started in a running container. The daemon is multi-threaded
//! and must not fork container processes itself, so each exec runs `berth oci exec` as a
//! helper child whose stdin, stdout and stderr are pipes the API streams; the helper joins
//! the container, applies its confinement (seccomp included) and exits with the process's
//! status. With a terminal, the helper relays the process's pty on those same pipes.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;

use crate::model::Status;
use crate::{Engine, Error, Result};

/// The body of `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecRequest {
    /// The command.
    pub cmd: Vec<String>,
    /// Extra `KEY=value` pairs.
    pub env: Option<Vec<String>>,
    /// Working directory; the container's when empty.
    pub working_dir: String,
    /// `uid[:gid]`; the container's when empty.
    pub user: String,
    /// Allocate a terminal.
    pub tty: bool,
    /// Stream the client's stdin to the process.
    pub attach_stdin: bool,
}

/// An exec instance.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    /// Its id.
    pub id: String,
    /// The container it runs in.
    pub container_id: String,
    /// What was asked.
    pub request: ExecRequest,
    /// Whether its process runs.
    pub running: bool,
    /// Its exit status once it ended.
    pub exit_code: Option<i32>,
}

/// The exec instances of an engine, and the terminal size pipes of the running ones
/// that have a terminal.
#[derive(Debug, Default)]
pub(crate) struct Execs {
    records: Mutex<HashMap<String, ExecRecord>>,
    terminals: Mutex<HashMap<String, std::fs::File>>,
}

impl Execs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn terminals(&self) -> std::sync::MutexGuard<'_, HashMap<String, std::fs::File>> {
        self.terminals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Engine {
    /// Registers an exec instance in a running container.
    pub fn create_exec(&self, container: &str, request: ExecRequest) -> Result<ExecRecord> {
        let container = self.container(container)?;
        if container.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "container {} is not running",
                container.id
            )));
        }
        if request.cmd.is_empty() {
            return Err(Error::Invalid("No exec command specified".into()));
        }
        let record = ExecRecord {
            id: crate::containers::random_hex(32)?,
            container_id: container.id.clone(),
            request,
            running: false,
            exit_code: None,
        };
        self.execs.lock().insert(record.id.clone(), record.clone());
        self.emit_exec(&record, "exec_create", &[]);
        Ok(record)
    }

    /// An exec instance.
    pub fn exec(&self, id: &str) -> Result<ExecRecord> {
        self.execs
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoSuchExec(id.to_string()))
    }

    /// Starts an exec instance's process; the caller streams the child's pipes and
    /// reports its end with [`Engine::exec_ended`].
    pub fn start_exec(&self, id: &str) -> Result<Child> {
        let record = self.exec(id)?;
        let stdin = if record.request.attach_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        // With a terminal, the helper relays it and takes its sizes from a pipe.
        let sizes = if record.request.tty {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| Error::Io(self.berth_binary.clone(), e.into()))?;
            self.execs.terminals().insert(id.to_string(), write.into());
            Some(read)
        } else {
            None
        };
        let child = self.spawn_exec_helper(
            (&record.container_id, &format!("exec-{id}.json")),
            &record.request,
            [stdin, Stdio::piped(), Stdio::piped()],
            sizes.as_ref(),
        )?;
        if let Some(record) = self.execs.lock().get_mut(id) {
            record.running = true;
        }
        self.emit_exec(&record, "exec_start", &[]);
        Ok(child)
    }

    /// Starts `berth oci exec` for `request` in the container, its process spec written
    /// to `file_name` in the container's directory, with `stdio` as its stdin, stdout and
    /// stderr, and `sizes` (the read end of a pipe of terminal sizes) as its descriptor
    /// 3: the one way execs and health probes enter a container.
    pub(crate) fn spawn_exec_helper(
        &self,
        (container_id, file_name): (&str, &str),
        request: &ExecRequest,
        [stdin, stdout, stderr]: [Stdio; 3],
        sizes: Option<&std::os::fd::OwnedFd>,
    ) -> Result<Child> {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let dir = self.container_dir(container_id);
        let process = exec_process(&dir.join("config.json"), request)?;
        let file = dir.join(file_name);
        std::fs::write(&file, serde_json::to_vec(&process).unwrap_or_default())
            .map_err(|e| Error::Io(file.clone(), e))?;
        let mut command = Command::new(&self.berth_binary);
        command
            .arg("oci")
            .arg("--root")
            .arg(&self.runtime_root)
            .args(["exec", "--process"])
            .arg(&file);
        if let Some(sizes) = sizes {
            let raw = sizes.as_raw_fd();
            command.args(["--resize-fd", "3"]);
            // SAFETY: only dup2, which is async-signal-safe, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::dup2(raw, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .arg(container_id)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::Io(self.berth_binary.clone(), e))
    }

    /// Sets the size of a running exec instance's terminal (`docker exec -t`'s and
    /// `kubectl exec -t`'s resizes).
    pub fn resize_exec(&self, id: &str, rows: u16, columns: u16) -> Result<()> {
        use std::io::Write;
        let record = self.exec(id)?;
        let mut terminals = self.execs.terminals();
        let pipe = terminals.get_mut(id).ok_or_else(|| {
            Error::Conflict(format!(
                "exec {id} has no terminal, or its process has ended (running: {})",
                record.running
            ))
        })?;
        pipe.write_all(format!("{rows} {columns}\n").as_bytes())
            .map_err(|e| Error::Io(self.berth_binary.clone(), e))
    }

    /// Records the end of an exec instance's process.
    pub fn exec_ended(&self, id: &str, exit_code: i32) {
        self.execs.terminals().remove(id);
        if let Ok(record) = self.exec(id) {
            self.emit_exec(&record, "exec_die", &[("exitCode", exit_code.to_string())]);
        }
        if let Some(record) = self.execs.lock().get_mut(id) {
            record.running = false;
            record.exit_code = Some(exit_code);
            let file = self
                .container_dir(&record.container_id)
                .join(format!("exec-{id}.json"));
            let _ = std::fs::remove_file(file);
        }
    }
}

/// An exec helper's pipes, for async readers and writers: stdin (when the exec takes
/// input), stdout and stderr.
pub type ExecPipes = (
    Option<tokio::process::ChildStdin>,
    Option<tokio::process::ChildStdout>,
    Option<tokio::process::ChildStderr>,
);

/// Takes the pipes of a child [`Engine::start_exec`] started, for use on a tokio runtime.
pub fn exec_pipes(child: &mut Child) -> ExecPipes {
    (
        child
            .stdin
            .take()
            .and_then(|p| tokio::process::ChildStdin::from_std(p).ok()),
        child
            .stdout
            .take()
            .and_then(|p| tokio::process::ChildStdout::from_std(p).ok()),
        child
            .stderr
            .take()
            .and_then(|p| tokio::process::ChildStderr::from_std(p).ok()),
    )
}

impl Engine {
    /// Docker's exec events: `exec_create: CMD ARGS`, on the container, with the exec id.
    fn emit_exec(&self, record: &ExecRecord, action: &str, extra: &[(&str, String)]) {
        let Ok(container) = self.container(&record.container_id) else {
            return;
        };
        let mut attributes = vec![("execID", record.id.clone())];
        attributes.extend(extra.iter().cloned());
        let action = if action == "exec_die" {
            action.to_string()
        } else {
            format!("{action}: {}", record.request.cmd.join(" "))
        };
        self.emit_container(&container, &action, &attributes);
    }
}

/// The container's own process spec with the exec's command, environment, directory,
/// user and terminal laid over it, as runc's exec does.
fn exec_process(config: &std::path::Path, request: &ExecRequest) -> Result<Value> {
    let spec: Value = std::fs::read(config)
        .ok()
        .and_then(|data| serde_json::from_slice(&data).ok())
        .ok_or_else(|| Error::Conflict("the container's spec is gone: is it running?".into()))?;
    let mut process = spec["process"].clone();
    process["args"] = serde_json::json!(request.cmd);
    process["terminal"] = serde_json::json!(request.tty);
    if let Some(extra) = &request.env {
        let mut env: Vec<String> =
            serde_json::from_value(process["env"].clone()).unwrap_or_default();
        for pair in extra {
            let key = pair.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(pair.clone());
        }
        process["env"] = serde_json::json!(env);
    }
    if !request.working_dir.is_empty() {
        process["cwd"] = serde_json::json!(request.working_dir);
    }
    if !request.user.is_empty() {
        let rootfs = spec["root"]["path"]
            .as_str()
            .map(std::path::PathBuf::from)
            .ok_or_else(|| Error::Conflict("the container's spec names no root".into()))?;
        let (uid, gid) = crate::accounts::user(&request.user, &rootfs)?;
        process["user"] = serde_json::json!({"uid": uid, "gid": gid});
    }
    Ok(process)
}
