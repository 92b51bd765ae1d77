//! A real OCI registry for tests (Debian's docker-registry, distribution 2.8) on a
//! loopback port, its storage under the caller's scratch, seeded with skopeo and killed
//! when the guard drops. It can run inside a test host's network namespace, where a
//! daemon on that host reaches it on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::guard::ChildGuard;
use crate::layout::LayoutImage;

/// A running registry; it is killed on drop.
#[derive(Debug)]
pub struct LocalRegistry {
    /// `IP:PORT`, as image references name it.
    pub address: String,
    netns: Option<PathBuf>,
    _process: ChildGuard,
}

impl LocalRegistry {
    /// Starts a registry storing under `dir`, in the network namespace at `netns` (the
    /// caller's when None), listening on `address` (`IP:PORT`), and waits until it
    /// answers.
    pub fn start(dir: &Path, netns: Option<&Path>, address: &str) -> std::io::Result<Self> {
        Self::start_with_users(dir, netns, address, &[])
    }

    /// Starts a registry as [`LocalRegistry::start`] does that, when `users` (name and
    /// password) are given, lets only them in, with basic auth (an htpasswd file made
    /// with apache2-utils' `htpasswd`).
    pub fn start_with_users(
        dir: &Path,
        netns: Option<&Path>,
        address: &str,
        users: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("storage"))?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
            dir.join("storage").display()
        );
        if !users.is_empty() {
            let htpasswd = dir.join("htpasswd");
            let mut lines = String::new();
            for (user, password) in users {
                let output = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()?;
                if !output.status.success() {
                    return Err(std::io::Error::other("htpasswd failed"));
                }
                lines.push_str(String::from_utf8_lossy(&output.stdout).trim());
                lines.push('\n');
            }
            std::fs::write(&htpasswd, lines)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)?;
        let config = config_path;
        let mut command = in_netns(netns, "docker-registry");
        let process = command
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let registry = Self {
            address: address.to_string(),
            netns: netns.map(Path::to_path_buf),
            _process: ChildGuard(process),
        };
        registry.wait_until_it_answers()?;
        Ok(registry)
    }

    fn wait_until_it_answers(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answered = in_netns(self.netns.as_deref(), "curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    &format!("http://{}/v2/", self.address),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if answered {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(
                    "the registry did not answer within 20 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pushes `image` (an OCI layout) to this registry as `repository:tag` with skopeo,
    /// as `user` (name, password) when the registry wants one.
    pub fn push(
        &self,
        image: &LayoutImage,
        repository: &str,
        tag: &str,
        user: Option<(&str, &str)>,
    ) -> std::io::Result<()> {
        let mut command = in_netns(self.netns.as_deref(), "skopeo");
        command.args(["copy", "--all", "--quiet", "--dest-tls-verify=false"]);
        if let Some((name, password)) = user {
            command.arg(format!("--dest-creds={name}:{password}"));
        }
        let output = command
            .arg(format!("oci:{}:{}", image.dir.display(), image.tag))
            .arg(format!("docker://{}/{repository}:{tag}", self.address))
            .output()?;
        if output.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "skopeo copy failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }
}

/// `program`, run inside the network namespace at `netns` when one is given.
fn in_netns(netns: Option<&Path>, program: &str) -> Command {
    match netns {
        Some(netns) => {
            let mut command = Command::new("nsenter");
            command
                .arg(format!("--net={}", netns.display()))
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}
