//! Lifecycle hooks of the runtime spec: a program run with the container's state JSON on
//! its standard input, killed when it outlives its timeout.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::state::{StateReport, Status};
use crate::{Error, Result};

/// The hooks of one kind, in the order the spec lists them.
pub(crate) fn of_kind(hooks: Option<&Hooks>, kind: fn(&Hooks) -> &Option<Vec<Hook>>) -> &[Hook] {
    hooks.and_then(|h| kind(h).as_deref()).unwrap_or_default()
}

/// Whether init must stop once its mounts are made, for the runtime to run prestart and
/// createRuntime hooks and pass it the state that createContainer and startContainer
/// hooks read: a round trip only containers with such hooks pay for.
pub(crate) fn need_creation_step(hooks: Option<&Hooks>) -> bool {
    [
        Hooks::prestart,
        Hooks::create_runtime,
        Hooks::create_container,
        Hooks::start_container,
    ]
    .into_iter()
    .any(|kind| !of_kind(hooks, kind).is_empty())
}

/// Runs each hook in turn with `state`; the first failure stops the rest.
pub(crate) fn run_all(hooks: &[Hook], state: &[u8]) -> Result<()> {
    hooks.iter().try_for_each(|hook| run_hook(hook, state))
}

/// Runs each hook in turn with `state`, only logging failures: the spec's rule for
/// poststart and poststop hooks, whose container is already running or gone.
pub(crate) fn run_all_warn(hooks: &[Hook], state: &StateReport) {
    let state = state_json(state);
    for hook in hooks {
        if let Err(error) = run_hook(hook, &state) {
            tracing::warn!(%error, "hook failed");
        }
    }
}

/// The same state JSON with another status: startContainer hooks see `created`.
pub(crate) fn with_status(state: &[u8], status: Status) -> Vec<u8> {
    match serde_json::from_slice::<StateReport>(state) {
        Ok(mut report) => {
            report.status = status;
            state_json(&report)
        }
        Err(_) => state.to_vec(),
    }
}

/// The state as hooks read it on stdin.
pub(crate) fn state_json(state: &StateReport) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_default()
}

/// Runs `hook` with `state` (JSON) on stdin; fails when it exits non-zero or times out.
fn run_hook(hook: &Hook, state: &[u8]) -> Result<()> {
    let path = hook.path();
    let mut command = Command::new(path);
    let args = hook.args().clone().unwrap_or_default();
    if let Some((first, rest)) = args.split_first() {
        use std::os::unix::process::CommandExt;
        command.arg0(first).args(rest);
    }
    command.env_clear().envs(
        hook.env()
            .iter()
            .flatten()
            .filter_map(|e| e.split_once('=')),
    );
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Init(format!("hook {}: {e}", path.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state);
    }
    let timeout = hook.timeout().map(|t| Duration::from_secs(t.max(1) as u64));
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::Init(format!("hook {}: {e}", path.display())))?
        {
            return if status.success() {
                Ok(())
            } else {
                Err(Error::Init(format!(
                    "hook {} failed: {status}",
                    path.display()
                )))
            };
        }
        if timeout.is_some_and(|t| started.elapsed() > t) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Init(format!("hook {} timed out", path.display())));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
