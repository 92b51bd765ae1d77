//! A real etcd for tests (Debian's etcd-server): one member on loopback ports of its own
//! and a data directory under the caller's scratch, killed when the guard drops.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::guard::ChildGuard;

/// A running etcd; it is killed on drop.
#[derive(Debug)]
pub struct Etcd {
    /// `127.0.0.1:PORT`, its client endpoint.
    pub endpoint: String,
    _process: ChildGuard,
}

/// A free TCP port on loopback, as the kernel picks one.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Etcd {
    /// Starts etcd with its data in `dir`. The caller waits until it answers.
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let process = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir)
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            endpoint: format!("127.0.0.1:{client}"),
            _process: ChildGuard(process),
        })
    }
}
