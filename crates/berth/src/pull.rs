//! `berth pull`, and the pull `berth run` makes of an image that is not here: the
//! daemon's progress (of pulls, and of pushes for `push.rs`) shown as docker shows it —
//! one line per layer, redrawn with a progress bar on a terminal, each change on a line
//! of its own otherwise.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::anyhow;
use berth_dockerapi::client::Client;
use futures_util::StreamExt;
use serde_json::Value;

use crate::Outcome;
use crate::cli::PullArgs;
use crate::containers::with_daemon;
use crate::credentials::registry_auth;
use crate::listing::size;

/// `berth pull NAME[:TAG]`.
pub fn pull(args: &PullArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    with_daemon(host, |client| async move {
        pull_image(&client, &args.name, args.quiet).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Pulls `name` through the daemon, showing its progress unless `quiet`; prints the
/// reference pulled, as docker does.
pub(crate) async fn pull_image(client: &Client, name: &str, quiet: bool) -> anyhow::Result<()> {
    let reference = berth_image::Reference::parse(name)?;
    let (image, tag) = (reference.repository.as_str(), reference.tag.as_str());
    let query = serde_urlencoded::to_string([("fromImage", image), ("tag", tag)])?;
    let headers: Vec<(&'static str, String)> = registry_auth(&reference)
        .map(|auth| ("X-Registry-Auth", auth))
        .into_iter()
        .collect();
    let path = format!("/images/create?{query}");
    show_progress(client, &path, &headers, quiet).await?;
    println!("{reference}");
    Ok(())
}

/// POSTs `path` and shows the daemon's progress lines as docker does (nothing when
/// `quiet`); the first error line is the command's error.
pub(crate) async fn show_progress(
    client: &Client,
    path: &str,
    headers: &[(&'static str, String)],
    quiet: bool,
) -> anyhow::Result<()> {
    let lines = client
        .json_lines("POST", path, headers)
        .await
        .map_err(|e| anyhow!(e))?;
    let mut lines = std::pin::pin!(lines);
    let mut display = Display::new(std::io::stdout().is_terminal() && !quiet);
    while let Some(line) = lines.next().await {
        let message = line.map_err(|e| anyhow!(e))?;
        if let Some(error) = message["error"].as_str() {
            return Err(anyhow!("{error}"));
        }
        if !quiet {
            display.show(&message)?;
        }
    }
    Ok(())
}

/// What the terminal shows: one line per layer, in the order they appeared.
struct Display {
    terminal: bool,
    layers: Vec<(String, String)>,
}

impl Display {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            layers: Vec::new(),
        }
    }

    /// Shows one message of the daemon.
    fn show(&mut self, message: &Value) -> std::io::Result<()> {
        let status = message["status"].as_str().unwrap_or_default();
        let id = message["id"].as_str().unwrap_or_default();
        let layer = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let mut out = std::io::stdout().lock();
        if status.is_empty() {
            // An `aux` message (a push's digest) is for programs, not for people.
            return Ok(());
        }
        if !layer {
            let line = if id.is_empty() {
                status.to_string()
            } else {
                format!("{id}: {status}")
            };
            return writeln!(out, "{line}");
        }
        let text = format!("{status}{}", bar(&message["progressDetail"]));
        if !self.terminal {
            // Without a terminal, progress would be a flood of lines: changes of state only.
            return if matches!(status, "Downloading" | "Pushing") {
                Ok(())
            } else {
                writeln!(out, "{id}: {text}")
            };
        }
        match self.layers.iter().position(|(known, _)| known == id) {
            Some(index) => {
                self.layers[index].1 = text;
                let up = self.layers.len() - index;
                // Up to the layer's line, rewrite it, back down.
                write!(
                    out,
                    "\x1b[{up}A\r\x1b[2K{id}: {}\r\x1b[{up}B",
                    self.layers[index].1
                )?;
            }
            None => {
                writeln!(out, "{id}: {text}")?;
                self.layers.push((id.to_string(), text));
            }
        }
        out.flush()
    }
}

/// ` [=====>      ]  1.2MB/4.5MB` from a progress detail, or nothing.
fn bar(detail: &Value) -> String {
    let (Some(current), Some(total)) = (detail["current"].as_u64(), detail["total"].as_u64())
    else {
        return String::new();
    };
    const WIDTH: u64 = 50;
    let done = (current * WIDTH).checked_div(total).unwrap_or(0).min(WIDTH);
    let arrow = if done < WIDTH { ">" } else { "" };
    format!(
        " [{}{arrow}{}] {}/{}",
        "=".repeat(done as usize),
        " ".repeat((WIDTH - done).saturating_sub(arrow.len() as u64) as usize),
        size(current),
        size(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_with_progress() {
        let half = bar(&serde_json::json!({"current": 500_000, "total": 1_000_000}));
        assert!(
            half.starts_with(&format!(" [{}>", "=".repeat(25))),
            "{half}"
        );
        assert!(half.ends_with("] 500kB/1MB"), "{half}");
        assert_eq!(bar(&serde_json::json!({})), "");
    }
}
