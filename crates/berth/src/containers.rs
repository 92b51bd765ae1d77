//! `berth run`: a client of the daemon's Docker Engine API, as `docker run` is: create,
//! attach, wait, start, then the container's output on our stdout and stderr and its exit
//! status as ours.

use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use berth_dockerapi::client::{Client, socket_from};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::Outcome;
use crate::cli::RunArgs;

/// Runs `berth run`.
pub fn run(args: &RunArgs, host: Option<&str>) -> Result<ExitCode, Outcome> {
    let code = with_daemon(
        host,
        |client| async move { run_container(&client, args).await },
    )?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs `work` against the daemon `host` names, on a single-threaded async runtime: what
/// every client command of the CLI does.
pub(crate) fn with_daemon<T, F>(
    host: Option<&str>,
    work: impl FnOnce(Client) -> F,
) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
{
    let client = Client::new(socket_from(host).map_err(|e| anyhow!(e))?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(work(client))
}

async fn run_container(client: &Client, args: &RunArgs) -> anyhow::Result<i64> {
    let body = create_body(args)?;
    let query = args
        .name
        .as_ref()
        .map(|n| format!("?name={n}"))
        .unwrap_or_default();
    let path = format!("/containers/create{query}");
    let mut created = client
        .call("POST", &path, Some(&body))
        .await
        .map_err(|e| anyhow!(e))?;
    if created.status == 404 {
        // As docker: an image not here is pulled, then the create tried again.
        eprintln!("Unable to find image '{}' locally", args.image);
        crate::pull::pull_image(client, &args.image, false).await?;
        created = client
            .call("POST", &path, Some(&body))
            .await
            .map_err(|e| anyhow!(e))?;
    }
    let created = created.ok().map_err(|e| anyhow!(e))?;
    let id = created.json()["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if args.detach {
        start(client, &id).await?;
        println!("{id}");
        return Ok(0);
    }
    run_attached(client, &id, args.rm).await
}

/// Starts container `id` with its output on ours, as `docker run` without `-d` does;
/// its exit status once it ends (and, with `rm`, is removed).
pub(crate) async fn run_attached(client: &Client, id: &str, rm: bool) -> anyhow::Result<i64> {
    let attach = client
        .hijack(&format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1"
        ))
        .await
        .map_err(|e| anyhow!(e))?;
    let condition = if rm { "removed" } else { "next-exit" };
    let wait = client
        .call_later(
            "POST",
            &format!("/containers/{id}/wait?condition={condition}"),
        )
        .await
        .map_err(|e| anyhow!(e))?;
    start(client, id).await?;
    let output = tokio::spawn(demultiplex(attach));
    let answer = wait.await.and_then(|a| a.ok()).map_err(|e| anyhow!(e))?;
    let _ = output.await;
    answer.json()["StatusCode"]
        .as_i64()
        .ok_or_else(|| anyhow!("the daemon gave no exit status: {}", answer.json()))
}

pub(crate) async fn start(client: &Client, id: &str) -> anyhow::Result<()> {
    client
        .call("POST", &format!("/containers/{id}/start"), None)
        .await
        .and_then(|a| a.ok())
        .map(|_| ())
        .map_err(|e| anyhow!(e))
}

/// Copies Docker's multiplexed stream to our stdout and stderr.
pub(crate) async fn demultiplex(mut stream: impl AsyncRead + Unpin) {
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    while let Some((kind, payload)) = read_frame(&mut stream).await {
        let written = if kind == 2 {
            stderr.write_all(&payload).await.and(stderr.flush().await)
        } else {
            stdout.write_all(&payload).await.and(stdout.flush().await)
        };
        if written.is_err() {
            return;
        }
    }
}

/// The next frame of Docker's multiplexed stream: its kind (1 stdout, 2 stderr) and
/// payload; None at the end.
pub(crate) async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.ok()?;
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut payload = vec![0u8; size];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header[0], payload))
}

/// The create request of Docker's API for the flags given.
fn create_body(args: &RunArgs) -> anyhow::Result<Value> {
    let memory = args
        .memory
        .as_deref()
        .map(parse_bytes)
        .transpose()?
        .unwrap_or(0);
    let restart = args.restart.as_deref().unwrap_or("no");
    let (policy, retries) = restart.split_once(':').unwrap_or((restart, "0"));
    let retries: u64 = retries
        .parse()
        .with_context(|| format!("invalid restart policy {restart:?}"))?;
    let mut port_bindings = serde_json::Map::new();
    for spec in &args.publish {
        let (port, binding) = parse_publish(spec)?;
        match port_bindings.entry(port).or_insert_with(|| json!([])) {
            Value::Array(list) => list.push(binding),
            other => *other = json!([binding]),
        }
    }
    let exposed: serde_json::Map<String, Value> = port_bindings
        .keys()
        .map(|k| (k.clone(), json!({})))
        .collect();
    let network = args.network.clone().unwrap_or_else(|| "default".into());
    let mut body = json!({
        "Image": args.image,
        "Env": args.env,
        "WorkingDir": args.workdir.clone().unwrap_or_default(),
        "User": args.user.clone().unwrap_or_default(),
        "AttachStdout": !args.detach,
        "AttachStderr": !args.detach,
        "HostConfig": {
            "AutoRemove": args.rm,
            "Binds": args.volume,
            "Memory": memory,
            "ReadonlyRootfs": args.read_only,
            "Privileged": args.privileged,
            "CapAdd": args.cap_add,
            "CapDrop": args.cap_drop,
            "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
            "PortBindings": port_bindings,
            "PublishAllPorts": args.publish_all,
            "NetworkMode": network,
        },
        "ExposedPorts": exposed,
    });
    if !args.network_alias.is_empty() {
        body["NetworkingConfig"] =
            json!({"EndpointsConfig": {network: {"Aliases": args.network_alias}}});
    }
    if !args.command.is_empty() {
        body["Cmd"] = json!(args.command);
    }
    if let Some(entrypoint) = &args.entrypoint {
        body["Entrypoint"] = json!([entrypoint]);
    }
    Ok(body)
}

/// `-p [IP:][HOST_PORT:]PORT[/PROTO]` as docker reads it: the `PORT/PROTO` key and its
/// binding.
fn parse_publish(spec: &str) -> anyhow::Result<(String, Value)> {
    let (address, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let parts: Vec<&str> = address.rsplitn(3, ':').collect();
    let (port, host_port, host_ip) = match parts.as_slice() {
        [port] => (*port, "", ""),
        [port, host_port] => (*port, *host_port, ""),
        [port, host_port, host_ip] => (*port, *host_port, *host_ip),
        _ => bail!("invalid port specification: {spec:?}"),
    };
    let valid = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    if !valid(port) || !(host_port.is_empty() || valid(host_port)) {
        bail!("invalid port specification: {spec:?}");
    }
    if !matches!(protocol, "tcp" | "udp") {
        bail!("invalid proto: {protocol}");
    }
    Ok((
        format!("{port}/{protocol}"),
        json!({"HostIp": host_ip, "HostPort": host_port}),
    ))
}

/// `64m`, `1g`, `512k`, `1024` (bytes).
fn parse_bytes(text: &str) -> anyhow::Result<i64> {
    berth_engine::logs::parse_size(text)
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| anyhow!("invalid size {text:?}: use a number with b, k, m or g"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_flags_parse_as_docker_reads_them() {
        let parse = |spec| parse_publish(spec).unwrap();
        assert_eq!(
            parse("8080:80"),
            ("80/tcp".into(), json!({"HostIp": "", "HostPort": "8080"}))
        );
        assert_eq!(
            parse("127.0.0.1::53/udp"),
            (
                "53/udp".into(),
                json!({"HostIp": "127.0.0.1", "HostPort": ""})
            )
        );
        assert_eq!(parse("80").1, json!({"HostIp": "", "HostPort": ""}));
        for bad in ["x:80", "8080:0", "80/sctp", "70000"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse_as_docker_reads_them() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("lots").is_err());
    }
}
