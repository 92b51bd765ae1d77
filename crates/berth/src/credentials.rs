//! Registry credentials where the docker CLI keeps them (`$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`, under `auths` keyed by registry), so `docker login` and
//! `berth login` share them: `berth login` has the daemon check them (`POST /auth`, as
//! the docker CLI does) and stores them, `berth logout` removes them, and pulls and
//! pushes send them to the daemon as `X-Registry-Auth`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::Outcome;
use crate::cli::{LoginArgs, LogoutArgs};
use crate::containers::with_daemon;

/// The key Docker Hub's credentials are kept under, as the docker CLI keeps them.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

/// `berth login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]`.
pub fn login(args: &LoginArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let server = args.server.clone().unwrap_or_else(|| DOCKER_HUB.into());
    let username = args
        .username
        .clone()
        .context("berth login needs a user name (-u): interactive prompts are not supported yet")?;
    let password = password(args)?;
    let auth = json!({"username": username, "password": password, "serveraddress": server});
    with_daemon(host, |client| async move {
        client
            .call("POST", "/auth", Some(&auth))
            .await
            .and_then(|answer| answer.ok())
            .map_err(|e| anyhow!(e))
    })?;
    let path = config_path().context("neither DOCKER_CONFIG nor HOME is set")?;
    let mut config = read_config(&path)?;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    config["auths"][config_key(&server)] = json!({"auth": pair});
    write_config(&path, &config)?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// `berth logout [SERVER]`.
pub fn logout(args: &LogoutArgs) -> Result<ExitCode, Outcome> {
    let server = args.server.clone().unwrap_or_else(|| DOCKER_HUB.into());
    let path = config_path().context("neither DOCKER_CONFIG nor HOME is set")?;
    let mut config = read_config(&path)?;
    let removed = config["auths"]
        .as_object_mut()
        .and_then(|auths| auths.remove(&config_key(&server)));
    if removed.is_none() {
        println!("Not logged in to {server}");
        return Ok(ExitCode::SUCCESS);
    }
    write_config(&path, &config)?;
    println!("Removing login credentials for {server}");
    Ok(ExitCode::SUCCESS)
}

/// The `X-Registry-Auth` header for `reference`'s registry from the kept credentials, as
/// the docker CLI sends it; None without credentials for it.
pub(crate) fn registry_auth(reference: &berth_image::Reference) -> Option<String> {
    let (registry, _) = reference.registry_and_path();
    let credentials = kept_credentials(&registry)?;
    let auth = json!({
        "username": credentials.username,
        "password": credentials.password,
        "serveraddress": registry,
    });
    Some(base64::engine::general_purpose::URL_SAFE.encode(auth.to_string()))
}

/// The kept credentials for `registry` (`host[:port]`), if any: what a pull-through
/// cache uses upstream.
pub(crate) fn kept_credentials(registry: &str) -> Option<berth_image::Credentials> {
    let config = std::fs::read(config_path()?).ok()?;
    berth_image::Credentials::from_docker_config(&config, registry)
}

fn config_path() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))?;
    Some(dir.join("config.json"))
}

/// The key a server's credentials are kept under: Docker Hub's URL for Docker Hub, the
/// `host[:port]` otherwise.
fn config_key(server: &str) -> String {
    let host = server
        .split_once("://")
        .map_or(server, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.into(),
        _ => host.to_string(),
    }
}

/// The config file as it is (every key the docker CLI or others keep stays), or an empty
/// one.
fn read_config(path: &std::path::Path) -> anyhow::Result<Value> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Writes the config whole (a temp file renamed into place), readable only by its owner.
fn write_config(path: &std::path::Path, config: &Value) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().context("the config path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut temp, config)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    temp.persist(path)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// The password `-p` gives or stdin holds (`--password-stdin`).
fn password(args: &LoginArgs) -> anyhow::Result<String> {
    match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(password), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            Ok(password.clone())
        }
        (None, true) => read_password_from_stdin(),
        (None, false) => bail!(
            "berth login needs a password (--password or --password-stdin): interactive prompts are not supported yet"
        ),
    }
}

fn read_password_from_stdin() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("--password-stdin reads the password from a pipe, not a terminal");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("Password Required");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_kept_under_docker_s_keys() {
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(config_key("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(config_key("docker.io"), DOCKER_HUB);
        assert_eq!(config_key(DOCKER_HUB), DOCKER_HUB);
    }
}
