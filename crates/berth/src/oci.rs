//! `berth oci`: runc's command line over berth-runtime. Output and exit codes follow runc:
//! `state` prints the state JSON, `run` exits with the container's status, errors exit 1.

use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, bail};
use berth_runtime::{CreateOptions, ExecOptions, Process, Runtime};
use nix::sys::signal::Signal;

use crate::Outcome;
use crate::cli::{CreateArgs, ExecArgs, Oci, OciCommand};

/// Runs one `berth oci` command; errors also go to `--log` when given, as runc does.
pub fn run(oci: Oci) -> Result<ExitCode, Outcome> {
    let (log, format) = (oci.log.clone(), oci.log_format.clone());
    let result = dispatch(oci);
    if let (Err(Outcome::Failed(error)), Some(log)) = (&result, log) {
        write_log(&log, &format, &format!("{error:#}"));
    }
    result
}

fn dispatch(oci: Oci) -> Result<ExitCode, Outcome> {
    use OciCommand::*;
    let runtime =
        Runtime::new(&oci.root).with_context(|| format!("state root {}", oci.root.display()))?;
    match oci.command {
        Create(args) => {
            runtime.create(&args.id, &args.bundle, &options(&args)?)?;
        }
        Start { id } => runtime.start(&id)?,
        State { id } => println!("{}", serde_json::to_string_pretty(&runtime.state(&id)?)?),
        Kill { id, signal, all } => runtime.kill(&id, parse_signal(&signal)?, all)?,
        Delete { id, force } => runtime.delete(&id, force)?,
        Run {
            detach: true,
            create,
            ..
        } => {
            runtime.run_detached(&create.id, &create.bundle, &options(&create)?)?;
        }
        Run { keep, create, .. } => {
            let code = runtime.run(&create.id, &create.bundle, &options(&create)?, keep)?;
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        List { format, quiet } => list(&runtime, &format, quiet)?,
        Ps { format, id } => ps(&runtime, &format, &id)?,
        Events {
            stats,
            interval,
            id,
        } => events(&runtime, &id, stats, interval)?,
        Pause { id } => runtime.pause(&id)?,
        Resume { id } => runtime.resume(&id)?,
        Exec(args) => {
            let process = exec_process(&runtime, &args)?;
            let options = ExecOptions {
                detach: args.detach,
                pid_file: args.pid_file.clone(),
                console_socket: args.console_socket.clone(),
                resize_fd: args.resize_fd,
            };
            let code = runtime.exec(&args.id, &process, &options)?;
            if !args.detach {
                return Ok(ExitCode::from(code.clamp(0, 255) as u8));
            }
        }
        Spec {
            bundle,
            seccomp_profile,
        } => {
            let profile = seccomp_profile
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("read seccomp profile {}", path.display()))
                })
                .transpose()?;
            berth_runtime::write_default_spec(&bundle, profile.as_deref())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn options(args: &CreateArgs) -> anyhow::Result<CreateOptions> {
    Ok(CreateOptions {
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        no_pivot: args.no_pivot,
    })
}

/// The process `exec` runs: `--process` as given, or the container's own process from its
/// config.json with the command and flags of the command line laid over it, as runc does.
fn exec_process(runtime: &Runtime, args: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(path) = &args.process {
        let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        return serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()));
    }
    if args.command.is_empty() {
        bail!("exec needs a command, or --process FILE");
    }
    let bundle = runtime.state(&args.id)?.bundle;
    let mut process = berth_runtime::Bundle::load(&bundle)
        .ok()
        .and_then(|b| b.spec.process().clone())
        .unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for pair in &args.env {
        let key = pair.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(pair.clone());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let uid = uid
            .parse()
            .with_context(|| format!("invalid uid in --user {user:?}"))?;
        let gid = gid
            .parse()
            .with_context(|| format!("invalid gid in --user {user:?}"))?;
        process.user_mut().set_uid(uid);
        process.user_mut().set_gid(gid);
    }
    Ok(process)
}

/// runc's `events`: `{"type":"stats","id":…,"data":…}` lines, once or every `interval`
/// until the container stops, with an `oom` event whenever the OOM killer struck.
fn events(
    runtime: &Runtime,
    id: &str,
    once: bool,
    interval: std::time::Duration,
) -> anyhow::Result<()> {
    let mut oom_seen = 0;
    loop {
        let stats = runtime.stats(id)?;
        if stats.memory.oom_kill > oom_seen {
            oom_seen = stats.memory.oom_kill;
            println!("{}", serde_json::json!({"type": "oom", "id": id}));
        }
        println!(
            "{}",
            serde_json::json!({"type": "stats", "id": id, "data": stats})
        );
        if once || runtime.state(id)?.status == berth_runtime::Status::Stopped {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

/// `KILL`, `SIGKILL`, `kill` and `9` all name SIGKILL.
fn parse_signal(text: &str) -> anyhow::Result<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).with_context(|| format!("invalid signal number {number}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).with_context(|| format!("unknown signal {text:?}"))
}

fn list(runtime: &Runtime, format: &str, quiet: bool) -> anyhow::Result<()> {
    let states = runtime.list()?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for state in &states {
            writeln!(out, "{}", state.id)?;
        }
        return Ok(());
    }
    match format {
        "json" => writeln!(out, "{}", serde_json::to_string(&states)?)?,
        "table" => {
            writeln!(
                out,
                "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )?;
            for s in &states {
                writeln!(
                    out,
                    "{:<12} {:<10} {:<10} {:<40} {:<30} root",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created
                )?;
            }
        }
        other => bail!("invalid format option {other:?}: table or json"),
    }
    Ok(())
}

fn ps(runtime: &Runtime, format: &str, id: &str) -> anyhow::Result<()> {
    let pids = runtime.pids(id)?;
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            println!("{:>8} CMD", "PID");
            for pid in pids {
                let cmd = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                println!("{pid:>8} {}", cmd.trim());
            }
        }
        other => bail!("invalid format option {other:?}: table or json"),
    }
    Ok(())
}

fn write_log(path: &std::path::Path, format: &str, message: &str) {
    let line = match format {
        "json" => serde_json::json!({"level": "error", "msg": message, "time": berth_runtime::state::now_rfc3339()}).to_string(),
        _ => format!("level=error msg={message:?}"),
    };
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}
