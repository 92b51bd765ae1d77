//! `berth build CONTEXT`: the context sent to the daemon as a tar without what its
//! `.dockerignore` leaves out, as the docker CLI sends it to `POST /build`, and the
//! build's steps shown as they come, as BuildKit shows them (`build_progress.rs`).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;

use crate::Outcome;
use crate::build_progress::{BuildDisplay, Mode};
use crate::cli::BuildArgs;
use crate::containers::with_daemon;

/// Where a Dockerfile from outside the context travels inside it.
const OUTSIDE_DOCKERFILE: &str = ".berth-dockerfile";

/// `berth build [OPTIONS] CONTEXT`.
pub fn build(args: &BuildArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let (archive, dockerfile) = context(args)?;
    let mut query: Vec<(&str, String)> = args.tags.iter().map(|t| ("t", t.clone())).collect();
    query.push(("dockerfile", dockerfile));
    let build_args: serde_json::Map<String, serde_json::Value> = args
        .build_args
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_string(), value.into()),
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None => (pair.clone(), std::env::var(pair).unwrap_or_default().into()),
        })
        .collect();
    query.push((
        "buildargs",
        serde_json::Value::Object(build_args).to_string(),
    ));
    if let Some(target) = &args.target {
        query.push(("target", target.clone()));
    }
    if args.no_cache {
        query.push(("nocache", "1".into()));
    }
    if args.quiet {
        query.push(("q", "1".into()));
    }
    if args.pull {
        query.push(("pull", "1".into()));
    }
    if let Some(network) = &args.network {
        query.push(("networkmode", network.clone()));
    }
    let path = format!("/build?{}", serde_urlencoded::to_string(&query)?);
    let mode = match args.progress.as_str() {
        "plain" => Mode::Plain,
        "tty" => Mode::Tty,
        "auto" if std::io::stdout().is_terminal() => Mode::Tty,
        "auto" => Mode::Plain,
        other => return Err(anyhow!("invalid --progress {other:?}: auto, plain or tty").into()),
    };
    let quiet = args.quiet;
    with_daemon(host, |client| async move {
        let lines = client
            .upload_json_lines(&path, archive.into(), "application/x-tar")
            .await
            .map_err(|e| anyhow!(e))?;
        let mut lines = std::pin::pin!(lines);
        let mut display = BuildDisplay::new(mode);
        let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            let message = tokio::select! {
                line = lines.next() => match line {
                    Some(line) => line.map_err(|e| anyhow!(e))?,
                    None => break,
                },
                _ = ticks.tick() => {
                    display.redraw()?;
                    continue;
                }
            };
            if let Some(error) = message["error"].as_str() {
                display.finish()?;
                return Err(anyhow!("{error}"));
            }
            match message["stream"].as_str() {
                Some(text) if quiet => print!("{text}"),
                Some(text) => display.stream(text)?,
                None => {}
            }
        }
        if !quiet {
            display.finish()?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The context as a tar and where the Dockerfile is in it.
fn context(args: &BuildArgs) -> anyhow::Result<(Vec<u8>, String)> {
    let dir = &args.context;
    if !dir.is_dir() {
        return Err(anyhow!(
            "unable to prepare context: path {:?} not found",
            dir.display().to_string()
        ));
    }
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| dir.join(berth_build::DEFAULT_DOCKERFILE));
    let inside = file
        .canonicalize()
        .ok()
        .zip(dir.canonicalize().ok())
        .and_then(|(file, dir)| {
            file.strip_prefix(dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        });
    let dockerfile = inside.clone().unwrap_or_else(|| OUTSIDE_DOCKERFILE.into());
    let outside = match inside {
        Some(_) => None,
        None => Some(
            std::fs::read(&file)
                .with_context(|| format!("unable to prepare context: {}", file.display()))?,
        ),
    };
    let extra = outside.as_deref().map(|text| (OUTSIDE_DOCKERFILE, text));
    let archive = berth_build::context_archive(dir, &dockerfile, extra).map_err(|e| anyhow!(e))?;
    Ok((archive, dockerfile))
}
