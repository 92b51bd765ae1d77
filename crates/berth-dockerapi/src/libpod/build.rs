//! `POST /libpod/build`, what `podman --remote build` (and podman-compose's builds) send:
//! the same context tar as Docker's `/build`, a query in buildah's words, and progress
//! as buildah prints it (`STEP 1/2: …`), ending with the image's id on a line of its own.
//! The query carries podman's defaults on every build; any other setting is refused by
//! name.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{RawQuery, State as Extract};
use axum::response::Response;
use berth_image::Reference;

use super::PodmanError;
use crate::State;
use crate::build::{Dialect, Options};
use crate::query::QueryPairs;

/// Query keys whose podman defaults mean what the builder does anyway, with the values
/// that mean it.
fn is_default(key: &str, value: &str) -> bool {
    match key {
        // Layers are always kept and cached; intermediate containers always removed.
        "layers" | "rm" | "forcerm" => value == "1" || value == "true",
        "jobs" | "isolation" => value == "1",
        // The builder's own label, and the server's proxy variables (it has none).
        "identitylabel" | "httpproxy" => matches!(value, "0" | "1" | "true" | "false"),
        "omithistory" | "squash" | "compatvolumes" => matches!(value, "0" | "false"),
        "output" | "outputformat" | "seccomp" | "apparmor" => true,
        "shmsize" => value == "67108864",
        "platform" => {
            value == "/" || value == format!("linux/{}", berth_image::host_architecture())
        }
        "idmappingoptions" => {
            let mapping: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
            mapping["HostUIDMapping"] == true && mapping["HostGIDMapping"] == true
        }
        "nsoptions" => value.contains(r#""Host":true"#) && !value.contains(r#""Host":false"#),
        "labels" | "annotations" | "extrahosts" | "volume" | "ulimits" | "dnsservers"
        | "dnssearch" | "dnsoptions" | "addcaps" | "dropcaps" | "devices" | "secrets"
        | "cachefrom" | "cacheto" | "excludes" => matches!(value, "" | "[]" | "{}" | "null"),
        _ => false,
    }
}

/// The build the query asks for, or a refusal naming what the builder does not do.
fn options(query: &QueryPairs) -> Result<Options, PodmanError> {
    const CARRIED_OUT: &[&str] = &[
        "dockerfile",
        "t",
        "buildargs",
        "target",
        "nocache",
        "q",
        "pull",
        "pullpolicy",
        "networkmode",
    ];
    for (key, value) in query.pairs() {
        if !CARRIED_OUT.contains(&key) && !value.is_empty() && !is_default(key, value) {
            return Err(PodmanError::bad_request(format!(
                "berth's builder does not support the build setting {key}={value}"
            )));
        }
    }
    let dockerfile = match query.first("dockerfile") {
        None => "Dockerfile".to_string(),
        Some(text) if text.starts_with('[') => {
            let files: Vec<String> = serde_json::from_str(text)
                .map_err(|e| PodmanError::bad_request(format!("dockerfile: {e}")))?;
            match files.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(PodmanError::bad_request(
                        "berth's builder takes one Containerfile",
                    ));
                }
            }
        }
        Some(name) => name.to_string(),
    };
    let pull = match (query.first("pullpolicy"), query.first("pull")) {
        (Some("always" | "newer"), _) | (None, Some("1" | "true")) => true,
        (None | Some("missing"), _) => false,
        (Some(other), _) => {
            return Err(PodmanError::bad_request(format!(
                "berth's builder does not support the pull policy {other:?}"
            )));
        }
    };
    // libpod's network policy: 0 the default, 1 none, 2 the host's.
    let network = match query.first("networkmode") {
        None | Some("0") => None,
        Some("1") => Some("none".to_string()),
        Some("2") => Some("host".to_string()),
        Some(other) => {
            return Err(PodmanError::bad_request(format!(
                "berth's builder does not support the network mode {other:?}"
            )));
        }
    };
    let tags = query
        .all("t")
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| Reference::parse(t))
        .collect::<Result<_, _>>()
        .map_err(crate::ApiError::from)?;
    let build_args = match query.first("buildargs") {
        Some(args) => serde_json::from_str::<BTreeMap<String, String>>(args)
            .map_err(|e| PodmanError::bad_request(format!("buildargs: {e}")))?,
        None => BTreeMap::new(),
    };
    Ok(Options {
        dockerfile,
        tags,
        build_args,
        target: query.first("target").map(str::to_string),
        no_cache: super::flag(query.first("nocache")),
        quiet: super::flag(query.first("q")),
        pull,
        network,
        dialect: Dialect::Podman,
    })
}

/// `POST /libpod/build`.
pub(crate) async fn build(
    engine: Extract<State>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, PodmanError> {
    crate::build::start(engine, options(&QueryPairs::parse(query.as_deref())), body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_compose_builds_are_understood_and_other_settings_refused() {
        let sent = "dockerfile=%5B%22Dockerfile%22%5D&forcerm=1&identitylabel=1&idmappingoptions=%7B%22HostUIDMapping%22%3Atrue%2C%22HostGIDMapping%22%3Atrue%7D&isolation=1&jobs=1&layers=1&networkmode=0&nsoptions=%5B%7B%22Name%22%3A%22user%22%2C%22Host%22%3Atrue%2C%22Path%22%3A%22%22%7D%5D&omithistory=0&output=localhost%2Fkv%3A1&outputformat=application%2Fvnd.oci.image.manifest.v1%2Bjson&platform=%2F&pullpolicy=missing&rm=1&seccomp=%2Fusr%2Fshare%2Fcontainers%2Fseccomp.json&shmsize=67108864&t=localhost%2Fkv%3A1";
        let parsed = options(&QueryPairs::parse(Some(sent))).unwrap();
        assert_eq!(parsed.dockerfile, "Dockerfile");
        assert_eq!(parsed.tags[0].to_string(), "localhost/kv:1");
        assert!(!parsed.pull && parsed.network.is_none());
        let refused = |extra: &str| {
            let query = format!("{sent}&{extra}");
            options(&QueryPairs::parse(Some(&query)))
                .err()
                .unwrap()
                .0
                .message
        };
        assert!(refused("squash=1").contains("squash"));
        assert!(refused("labels=%7B%22a%22%3A%22b%22%7D").contains("labels"));
        assert!(refused("shmsize=1024").contains("shmsize"));
    }
}
