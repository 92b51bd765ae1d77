//! The images every test uses, built from what is on the machine, with no network:
//! `busybox` (Debian's busybox-static, its applets as symlinks, `/etc/passwd`, `/etc/group`)
//! and `webapp` (busybox plus the static `testapp` HTTP server).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::error::IoContext;
use crate::layer::{Layer, LayerBuilder};
use crate::layout::{LayoutImage, write_layout};
use crate::{Error, Result};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";
/// The `PATH` every test image sets.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The port `testapp serve` listens on in the webapp image.
pub const WEBAPP_PORT: u16 = 8080;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n";

/// The busybox layer: the binary, one symlink per applet, the usual top-level directories
/// and the account files.
pub fn busybox_layer() -> Result<Layer> {
    let binary = std::fs::read(BUSYBOX).map_err(|_| Error::Missing(BUSYBOX.into()))?;
    let listing = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .at(BUSYBOX)?;
    let mut layer = LayerBuilder::new().file("bin/busybox", binary, 0o755);
    for applet in String::from_utf8_lossy(&listing.stdout).lines() {
        if applet != "bin/busybox" && !applet.is_empty() {
            layer = layer.symlink(applet, "/bin/busybox");
        }
    }
    for dir in ["dev", "proc", "sys", "root", "home", "var", "etc", "run"] {
        layer = layer.dir(dir, 0o755);
    }
    layer
        .dir("tmp", 0o1777)
        .file("etc/passwd", PASSWD, 0o644)
        .file("etc/group", GROUP, 0o644)
        .build()
}

/// Writes the busybox image into the OCI layout at `dir`, tagged `latest`; its command is `sh`.
pub fn busybox_image(dir: &Path) -> Result<LayoutImage> {
    let config = json!({"Env": [PATH_ENV], "Cmd": ["sh"]});
    write_layout(dir, "latest", config, &[busybox_layer()?])
}

/// Writes busybox for two platforms into the OCI layout at `dir`, tagged `latest`: this
/// host's architecture, whose config sets `PLATFORM=<arch>`, and another one (`arm64`, or
/// `amd64` on arm64 hosts) whose config says its own — a pull must pick the first.
pub fn busybox_multi_platform_image(dir: &Path) -> Result<LayoutImage> {
    let host = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let config = |arch: &str| json!({"Env": [PATH_ENV, format!("PLATFORM={arch}")], "Cmd": ["sh"]});
    let layer = busybox_layer()?;
    crate::layout::write_multi_platform_layout(
        dir,
        "latest",
        &[(host, config(host)), (other, config(other))],
        &[layer],
    )
}

/// Writes the web application image into the OCI layout at `dir`, tagged `latest`: busybox
/// plus `/bin/testapp`, serving HTTP on [`WEBAPP_PORT`] with a health check on `/healthz`.
pub fn webapp_image(dir: &Path) -> Result<LayoutImage> {
    let app = std::fs::read(crate::testapp_path()).at(crate::testapp_path())?;
    let app_layer = LayerBuilder::new()
        .file("bin/testapp", app, 0o755)
        .build()?;
    let port = WEBAPP_PORT.to_string();
    let config = json!({
        "Env": [PATH_ENV],
        "Entrypoint": ["/bin/testapp"],
        "Cmd": ["serve", port],
        "ExposedPorts": {format!("{port}/tcp"): {}},
        "Healthcheck": {
            "Test": ["CMD", "wget", "-q", "-O", "/dev/null", format!("http://127.0.0.1:{port}/healthz")],
            "Interval": 1_000_000_000u64,
        },
    });
    write_layout(dir, "latest", config, &[busybox_layer()?, app_layer])
}
