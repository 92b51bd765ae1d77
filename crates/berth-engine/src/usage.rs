//! Disk usage (`docker system df`): what each container wrote, and what each volume holds,
//! counted in bytes of the files' blocks as `du` counts them; and a running container's
//! network traffic (`docker stats`), as its namespace's /proc/net/dev counts it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::model::Container;
use crate::{Engine, Error, Result};

/// Bytes the files under `path` take on disk, without following symlinks; what cannot be
/// read counts as nothing.
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    let children = std::fs::read_dir(path).into_iter().flatten().flatten();
    own + children.map(|entry| disk_usage(&entry.path())).sum::<u64>()
}

/// One interface's traffic counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceUsage {
    /// The interface's name in the container (`eth0`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
}

/// The interfaces of /proc/net/dev's `text` but loopback, which Docker leaves out.
fn parse_net_dev(text: &str) -> Vec<InterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let n: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect();
            let name = name.trim();
            (name != "lo" && n.len() >= 12).then(|| InterfaceUsage {
                name: name.to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

impl Engine {
    /// The traffic of a running container's own network namespace, per interface; none
    /// when it is not running or uses the host's network.
    pub fn container_network_usage(&self, name: &str) -> Result<Vec<InterfaceUsage>> {
        let container = self.container(name)?;
        if container.state.status != crate::Status::Running
            || container.request.host_config.network_mode == "host"
        {
            return Ok(Vec::new());
        }
        let path = format!("/proc/{}/net/dev", container.state.pid);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(parse_net_dev(&text)),
            // It ended since its record was read: no traffic to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Io(path.into(), e)),
        }
    }

    /// Bytes a container wrote over its image (its overlay's upper directory).
    pub fn container_size(&self, container: &Container) -> u64 {
        disk_usage(&self.container_dir(&container.id).join("upper"))
    }

    /// Bytes volume `name` holds, and how many containers use it.
    pub fn volume_usage(&self, name: &str) -> (u64, usize) {
        let size = self.volume(name).map_or(0, |v| disk_usage(&v.mountpoint));
        let users = self
            .containers(true)
            .iter()
            .filter(|c| crate::volumes::uses_volume(c, name))
            .count();
        (size, users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_counts_every_interface_but_loopback() {
        let text = "Inter-|   Receive                            |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0
";
        assert_eq!(
            parse_net_dev(text),
            [InterfaceUsage {
                name: "eth0".into(),
                rx_bytes: 1500,
                rx_packets: 10,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 700,
                tx_packets: 5,
                tx_errors: 3,
                tx_dropped: 4,
            }]
        );
    }
}
