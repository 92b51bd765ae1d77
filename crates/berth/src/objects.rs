//! `berth network …` and `berth volume …`: create, ls, inspect and rm, clients of the
//! daemon's API with docker's output.

use std::process::ExitCode;

use anyhow::anyhow;
use serde_json::{Value, json};

use crate::Outcome;
use crate::cli::{NamesArgs, NetworkCommand, VolumeCommand};
use crate::commands::each_name;
use crate::containers::with_daemon;
use crate::listing::{get, table};

/// Sends `body` to `path` and gives the answer.
fn post(host: Option<&str>, path: &str, body: &Value) -> anyhow::Result<Value> {
    with_daemon(host, |client| async move {
        let answer = client
            .call("POST", path, Some(body))
            .await
            .and_then(|a| a.ok());
        Ok(answer.map_err(|e| anyhow!(e))?.json())
    })
}

/// Each object as JSON in one array, as `docker network|volume inspect` prints them.
fn inspect(host: Option<&str>, args: &NamesArgs, kind: &str) -> Result<ExitCode, Outcome> {
    let found = std::sync::Mutex::new(Vec::new());
    let code = each_name(
        host,
        &args.names,
        |name| ("GET", format!("/{kind}/{name}")),
        |_, object| found.lock().map(|mut f| f.push(object)).unwrap_or_default(),
    )?;
    let found = found.into_inner().unwrap_or_default();
    println!(
        "{}",
        serde_json::to_string_pretty(&found).unwrap_or_default()
    );
    Ok(code)
}

/// `berth network …`.
pub fn network(command: NetworkCommand, host: Option<&str>) -> Result<ExitCode, Outcome> {
    match command {
        NetworkCommand::Create(args) => {
            let mut body =
                json!({"Name": args.name, "Driver": "bridge", "Internal": args.internal});
            if args.subnet.is_some() || args.gateway.is_some() {
                body["IPAM"] =
                    json!({"Config": [{"Subnet": args.subnet, "Gateway": args.gateway}]});
            }
            let created = post(host, "/networks/create", &body)?;
            println!("{}", created["Id"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Ls(_) => {
            let list = get(host, "/networks")?;
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    let text = |key: &str| n[key].as_str().unwrap_or_default().to_string();
                    vec![
                        text("Id").chars().take(12).collect(),
                        text("Name"),
                        text("Driver"),
                        text("Scope"),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Inspect(args) => inspect(host, &args, "networks"),
        NetworkCommand::Rm(args) => each_name(
            host,
            &args.names,
            |name| ("DELETE", format!("/networks/{name}")),
            |name, _| println!("{name}"),
        ),
        _ => Err(Outcome::NotImplemented),
    }
}

/// `berth volume …`.
pub fn volume(command: VolumeCommand, host: Option<&str>) -> Result<ExitCode, Outcome> {
    match command {
        VolumeCommand::Create(args) => {
            let created = post(
                host,
                "/volumes/create",
                &json!({"Name": args.name.unwrap_or_default()}),
            )?;
            println!("{}", created["Name"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        VolumeCommand::Ls(_) => {
            let list = get(host, "/volumes")?;
            let rows: Vec<Vec<String>> = list["Volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    let text = |key: &str| v[key].as_str().unwrap_or_default().to_string();
                    vec![text("Driver"), text("Name")]
                })
                .collect();
            println!("{}", table(&["DRIVER", "VOLUME NAME"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        VolumeCommand::Inspect(args) => inspect(host, &args, "volumes"),
        VolumeCommand::Rm(args) => each_name(
            host,
            &args.names,
            |name| ("DELETE", format!("/volumes/{name}")),
            |name, _| println!("{name}"),
        ),
        VolumeCommand::Prune(_) => Err(Outcome::NotImplemented),
    }
}
