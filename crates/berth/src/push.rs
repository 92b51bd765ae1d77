//! `berth push NAME[:TAG]`: the daemon pushes the image with the credentials `berth
//! login` or `docker login` kept, and its progress is shown as `berth pull` shows a pull's.

use std::process::ExitCode;

use anyhow::anyhow;
use berth_dockerapi::client::Client;

use crate::Outcome;
use crate::cli::PushArgs;
use crate::containers::with_daemon;
use crate::credentials::registry_auth;
use crate::pull::show_progress;

/// `berth push NAME[:TAG]`.
pub fn push(args: &PushArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    if args.all_tags {
        let refused = "berth does not support pushing every tag yet (--all-tags): name a tag";
        return Err(anyhow!(refused).into());
    }
    let quiet = args.quiet;
    with_daemon(host, |client| async move {
        push_image(&client, &args.name, quiet).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Has the daemon push `name` with the credentials kept for its registry, showing the
/// progress (only the name, when `quiet`).
pub(crate) async fn push_image(client: &Client, name: &str, quiet: bool) -> anyhow::Result<()> {
    let reference = berth_image::Reference::parse(name)?;
    let path = format!(
        "/images/{}/push?{}",
        reference.repository,
        serde_urlencoded::to_string([("tag", reference.tag.as_str())])?
    );
    let headers: Vec<(&'static str, String)> = registry_auth(&reference)
        .map(|auth| ("X-Registry-Auth", auth))
        .into_iter()
        .collect();
    show_progress(client, &path, &headers, quiet).await?;
    if quiet {
        println!("{reference}");
    }
    Ok(())
}
