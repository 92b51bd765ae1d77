//! Lifecycle hooks of the runtime spec: a program run with the container's state JSON on
//! its standard input, killed when it outlives its timeout.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::state::StateReport;
use crate::{Error, Result};

/// Runs `hook` with `state` on stdin; fails when it exits non-zero or times out.
pub fn run_hook(hook: &Hook, state: &StateReport) -> Result<()> {
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
        let _ = stdin.write_all(&serde_json::to_vec(state).unwrap_or_default());
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
