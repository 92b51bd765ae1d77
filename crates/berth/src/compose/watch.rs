//! `compose watch`: the services brought up, then their `develop.watch` rules carried out
//! as files change, as `docker compose watch` does — `sync` copies what changed under a
//! rule's path into the running containers at its target (and removes what was deleted),
//! `sync+restart` restarts them after, `rebuild` builds the image again and recreates
//! them. Changes are gathered for a moment first, so a save of many files is one action.
//! The watching is inotify's, through the notify crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use berth_build::DockerIgnore;
use berth_compose::{Loaded, WatchAction, WatchRule};
use berth_dockerapi::client::Client;
use notify::{EventKind, RecursiveMode, Watcher};

use super::{container_name, project_containers, selected};

/// How long changes are gathered before they are acted on.
const SETTLE: Duration = Duration::from_millis(200);

/// A rule of a service, with its absolute path and ignore patterns.
pub(super) struct Rule<'a> {
    service: &'a str,
    rule: &'a WatchRule,
    root: PathBuf,
    ignore: DockerIgnore,
}

/// `berth compose watch [SERVICE...]`: runs until Ctrl+C.
pub(super) async fn watch(
    client: &Client,
    loaded: &Loaded,
    services: &[String],
) -> anyhow::Result<()> {
    let rules = rules(loaded, services)?;
    super::up::up(
        client,
        loaded,
        &super::up::detached(services.to_vec(), false),
    )
    .await?;
    carry_out(client, loaded, &rules, true).await
}

/// The watch rules of the services named (all when none is); an error when there is
/// none, as Compose says.
pub(super) fn rules<'a>(loaded: &'a Loaded, services: &[String]) -> anyhow::Result<Vec<Rule<'a>>> {
    let mut rules = Vec::new();
    for (name, service) in selected(loaded, services)? {
        for rule in service.develop.iter().flat_map(|d| d.watch.iter()) {
            let ignore = DockerIgnore::parse(&rule.ignore.join("\n")).map_err(|e| anyhow!(e))?;
            rules.push(Rule {
                service: name,
                rule,
                root: loaded.dir.join(&rule.path),
                ignore,
            });
        }
    }
    if rules.is_empty() {
        anyhow::bail!(
            "none of the selected services is configured for watch, consider setting a 'develop' section"
        );
    }
    Ok(rules)
}

/// Carries out `rules` as files change; until Ctrl+C when `until_interrupted`, else
/// until the caller stops waiting (`up --watch`, whose attached output owns Ctrl+C).
pub(super) async fn carry_out(
    client: &Client,
    loaded: &Loaded,
    rules: &[Rule<'_>],
    until_interrupted: bool,
) -> anyhow::Result<()> {
    let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads are not changes: a build reading the context would trigger itself.
        let Ok(event) = event else {
            return;
        };
        if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
            return;
        }
        for path in event.paths {
            let _ = sender.send(path);
        }
    })
    .context("watch the project's files")?;
    for rule in rules {
        watcher
            .watch(&rule.root, RecursiveMode::Recursive)
            .with_context(|| format!("watch {}", rule.root.display()))?;
    }
    println!("Watch enabled");
    loop {
        let interrupted = async {
            if until_interrupted {
                let _ = tokio::signal::ctrl_c().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let first = tokio::select! {
            path = changes.recv() => path,
            () = interrupted => return Ok(()),
        };
        let Some(first) = first else {
            return Ok(());
        };
        let mut changed = BTreeSet::from([first]);
        let settled = tokio::time::sleep(SETTLE);
        tokio::pin!(settled);
        loop {
            tokio::select! {
                Some(path) = changes.recv() => { changed.insert(path); }
                () = &mut settled => break,
            }
        }
        if let Err(error) = act(client, loaded, rules, &changed).await {
            eprintln!("watch: {error:#}");
        }
    }
}

/// Carries out what `changed` asks of each rule.
async fn act(
    client: &Client,
    loaded: &Loaded,
    rules: &[Rule<'_>],
    changed: &BTreeSet<PathBuf>,
) -> anyhow::Result<()> {
    let mut rebuilds = BTreeSet::new();
    let mut restarts = BTreeSet::new();
    let mut syncs: BTreeMap<&str, Vec<(&Rule<'_>, &Path, String)>> = BTreeMap::new();
    for rule in rules {
        for path in changed {
            let Ok(inside) = path.strip_prefix(&rule.root) else {
                continue;
            };
            let relative = inside.to_string_lossy().into_owned();
            if rule.ignore.excludes(&relative) {
                continue;
            }
            match rule.rule.action {
                WatchAction::Rebuild => {
                    rebuilds.insert(rule.service);
                }
                WatchAction::Sync | WatchAction::SyncRestart => {
                    syncs
                        .entry(rule.service)
                        .or_default()
                        .push((rule, path, relative));
                    if rule.rule.action == WatchAction::SyncRestart {
                        restarts.insert(rule.service);
                    }
                }
            }
        }
    }
    for service in &rebuilds {
        println!("Rebuilding service {service:?} after changes were detected...");
        let up = super::up::detached(vec![service.to_string()], true);
        // Boxed: `up --watch` comes back here through this call.
        Box::pin(super::up::up(client, loaded, &up)).await?;
    }
    for (service, files) in syncs.iter().filter(|(s, _)| !rebuilds.contains(*s)) {
        println!(
            "Syncing service {service:?} after {} changed files",
            files.len()
        );
        let containers = project_containers(client, loaded, &[service.to_string()]).await?;
        for container in containers.iter().filter(|c| c["State"]["Running"] == true) {
            for (rule, path, relative) in files {
                let target = Path::new(rule.rule.target.as_deref().unwrap_or("/")).join(relative);
                sync(client, container_name(container), path, &target).await?;
            }
            if restarts.contains(service) {
                let name = container_name(container);
                super::call(
                    client,
                    "POST",
                    &format!("/containers/{name}/restart?t=10"),
                    None,
                )
                .await?;
                println!(" Container {name}  Restarted");
            }
        }
    }
    Ok(())
}

/// Makes `target` in `container` what `source` is now: copied in (a file, or a
/// directory with what is in it), or removed when `source` is gone.
async fn sync(
    client: &Client,
    container: &str,
    source: &Path,
    target: &Path,
) -> anyhow::Result<()> {
    if !source.exists() {
        let remove = ["rm", "-rf", &target.to_string_lossy()].map(str::to_string);
        let flags = crate::cli::ExecFlags {
            detach: false,
            env: Vec::new(),
            workdir: None,
            user: None,
            privileged: false,
        };
        let exec = crate::exec::Exec {
            flags: &flags,
            command: &remove,
            interactive: false,
            tty: false,
        };
        crate::exec::exec_in(client, container, &exec).await?;
        return Ok(());
    }
    let mut archive = tar::Builder::new(Vec::new());
    let inside = target.strip_prefix("/").unwrap_or(target);
    if source.is_dir() {
        archive.append_dir_all(inside, source)?;
    } else {
        archive.append_path_with_name(source, inside)?;
    }
    let bytes = archive.into_inner()?;
    let path = format!("/containers/{container}/archive?path=/");
    client
        .upload_with_method("PUT", &path, bytes.into(), "application/x-tar")
        .await
        .and_then(|a| a.ok())
        .map_err(|e| anyhow!(e))?;
    Ok(())
}
