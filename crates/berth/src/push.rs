//! `berth push NAME[:TAG]`: the daemon pushes the image with the credentials `berth
//! login` or `docker login` kept, and its progress is shown as `berth pull` shows a pull's.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::anyhow;
use futures_util::StreamExt;

use crate::Outcome;
use crate::cli::PushArgs;
use crate::containers::with_daemon;
use crate::credentials::registry_auth;
use crate::pull::Display;

/// `berth push NAME[:TAG]`.
pub fn push(args: &PushArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    if args.all_tags {
        let refused = "berth does not support pushing every tag yet (--all-tags): name a tag";
        return Err(anyhow!(refused).into());
    }
    let reference = berth_image::Reference::parse(&args.name)?;
    let path = format!(
        "/images/{}/push?{}",
        reference.repository,
        serde_urlencoded::to_string([("tag", reference.tag.as_str())])?
    );
    let headers: Vec<(&'static str, String)> = registry_auth(&reference)
        .map(|auth| ("X-Registry-Auth", auth))
        .into_iter()
        .collect();
    let quiet = args.quiet;
    with_daemon(host, |client| async move {
        let lines = client
            .json_lines("POST", &path, &headers)
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
        if quiet {
            println!("{reference}");
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
