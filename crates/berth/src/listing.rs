//! `berth ps` and `berth images`: the daemon's lists as docker prints them, columns
//! padded to their widest cell and three spaces apart.

use std::process::ExitCode;

use anyhow::anyhow;
use serde_json::Value;

use crate::Outcome;
use crate::cli::{ImagesArgs, PsArgs};

pub(crate) fn get(host: Option<&str>, path: &str) -> anyhow::Result<Value> {
    crate::containers::with_daemon(host, |client| async move {
        let answer = client.call("GET", path, None).await.and_then(|a| a.ok());
        Ok(answer.map_err(|e| anyhow!(e))?.json())
    })
}

/// The narrowest a column gets, spaces included: docker's tabwriter minimum.
const MIN_COLUMN: usize = 10;

/// Rows under a header, each column as wide as its widest cell, three spaces apart (and
/// at least [`MIN_COLUMN`] wide), as docker's tabwriter lays them out.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = (widths[i] + 3).max(MIN_COLUMN))
                }
            })
            .collect();
        padded.concat().trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

/// `2 minutes ago`, as docker words ages.
fn age(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match (now - unix).max(0) {
        s if s < 60 => format!("{s} seconds ago"),
        s if s < 3600 => format!("{} minutes ago", s / 60),
        s if s < 86400 => format!("{} hours ago", s / 3600),
        s if s < 86400 * 365 => format!("{} days ago", s / 86400),
        s => format!("{} years ago", s / (86400 * 365)),
    }
}

/// `2.13MB`: decimal units with three significant digits, as docker prints sizes.
pub(crate) fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let rounded = format!("{value:.digits$}");
    let trimmed = if rounded.contains('.') {
        rounded.trim_end_matches('0').trim_end_matches('.')
    } else {
        &rounded
    };
    format!("{trimmed}{}", units[unit])
}

/// `berth ps`.
pub fn ps(args: &PsArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let agent = format!("unix://{}/agent/berth.sock", berth_engine::DEFAULT_RUN_DIR);
    let host = match host {
        None if args.pods => Some(agent.as_str()),
        host => host,
    };
    let path = if args.all {
        "/containers/json?all=1"
    } else {
        "/containers/json"
    };
    let list = get(host, path)?;
    let containers = list.as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if args.quiet {
        for c in &containers {
            println!("{}", &text(&c["Id"]).chars().take(12).collect::<String>());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            let command = text(&c["Command"]);
            let command = if command.chars().count() > 20 {
                format!("\"{}…\"", command.chars().take(19).collect::<String>())
            } else {
                format!("\"{command}\"")
            };
            vec![
                text(&c["Id"]).chars().take(12).collect(),
                text(&c["Image"]),
                command,
                age(c["Created"].as_i64().unwrap_or(0)),
                text(&c["Status"]),
                ports(&c["Ports"]),
                text(&c["Names"][0]).trim_start_matches('/').to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// `berth images`.
pub fn images(args: &ImagesArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let list = get(host, "/images/json")?;
    let mut rows = Vec::new();
    for image in list.as_array().into_iter().flatten() {
        let id: String = image["Id"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let tags: Vec<String> = image["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for tag in tags {
            let (repository, tag) = tag.rsplit_once(':').unwrap_or((&tag, "<none>"));
            rows.push(vec![
                repository.to_string(),
                tag.to_string(),
                id.clone(),
                age(image["Created"].as_i64().unwrap_or(0)),
                size(image["Size"].as_u64().unwrap_or(0)),
            ]);
        }
    }
    if args.quiet {
        for row in &rows {
            println!("{}", row[2]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}",
        table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// The PORTS column: `0.0.0.0:8080->80/tcp`, or `80/tcp` for a port not published.
fn ports(list: &Value) -> String {
    let shown: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = format!(
                "{}/{}",
                p["PrivatePort"].as_u64().unwrap_or_default(),
                p["Type"].as_str().unwrap_or("tcp")
            );
            match p["PublicPort"].as_u64() {
                Some(public) => format!(
                    "{}:{public}->{private}",
                    p["IP"].as_str().unwrap_or("0.0.0.0")
                ),
                None => private,
            }
        })
        .collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(size(2_130_000), "2.13MB");
        assert_eq!(size(999), "999B");
        assert_eq!(size(12_500_000), "12.5MB");
        assert_eq!(size(123_000_000), "123MB");
    }

    #[test]
    fn columns_are_padded_to_their_widest_cell() {
        let rows = vec![vec![
            "a".to_string(),
            "long cell value".to_string(),
            "x".to_string(),
        ]];
        assert_eq!(
            table(&["ONE", "TWO", "THREE"], &rows),
            "ONE       TWO               THREE\na         long cell value   x"
        );
    }
}
