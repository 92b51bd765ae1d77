//! A container's filesystem as a whole: what it changed in its image (`docker diff`),
//! those changes kept as a new image (`docker commit`), and its root filesystem as one
//! tarball (`docker export`).

use std::io::Write;
use std::path::PathBuf;

use berth_image::{Change, CommitNote, Digest, Reference, UpperDir};
use serde_json::{Map, Value, json};

use crate::model::{Container, Status};
use crate::rootfs::Overlay;
use crate::{Engine, Error, Result};

/// Paths the engine makes in every container's root (mount points and the files it
/// binds over them), which Docker keeps in an init layer that `diff` and `commit` skip.
const ENGINE_PATHS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/.dockerenv",
];

/// What `docker commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// Dockerfile instructions to apply over the container's config (`--change`).
    pub changes: Vec<String>,
    /// Author and message.
    pub note: CommitNote,
    /// Tags for the new image.
    pub tags: Vec<Reference>,
    /// Freeze the container while its changes are read (`--pause`, Docker's default).
    pub pause: bool,
}

impl Engine {
    /// The container's changes to its image, sorted by path.
    pub fn changes(&self, name: &str) -> Result<Vec<Change>> {
        let container = self.container(name)?;
        let image = self.images.resolve(&container.image_id)?;
        let lowers = self.images.layer_dirs(&image);
        let overlay = Overlay::of(&self.container_dir(&container.id));
        upper_dir(&overlay, &lowers)
            .changes()
            .map_err(|e| Error::Io(overlay.upper().to_path_buf(), e))
    }

    /// Makes an image of the container: its image's layers, one more with its changes,
    /// and its config (command, environment, labels…) with `request.changes` over it.
    pub fn commit(&self, name: &str, request: CommitRequest) -> Result<Digest> {
        let container = self.container(name)?;
        let image = self.images.resolve(&container.image_id)?;
        let mut config = image_config(&container, &self.images.config(&image)?);
        apply_changes(&mut config, &request.changes)?;
        let pause =
            request.pause && container.state.status == Status::Running && !container.state.paused;
        if pause {
            self.pause_container(&container.id, true)?;
        }
        let layer = self.write_changes(&container, &self.images.layer_dirs(&image), None);
        if pause {
            self.pause_container(&container.id, false)?;
        }
        let id = self.images.commit(
            &image,
            layer?,
            Value::Object(config),
            &request.note,
            &request.tags,
        )?;
        let extra = [
            ("comment", request.note.comment),
            ("imageID", id.to_string()),
        ];
        self.emit_container(&container, "commit", &extra);
        Ok(id)
    }

    /// The container's changes to its image as an uncompressed layer blob in the content
    /// store (whose digest is therefore also its diff_id), no entry dated after `newest`:
    /// a build step's layer.
    pub fn container_layer(&self, name: &str, newest: u64) -> Result<Digest> {
        let container = self.container(name)?;
        let image = self.images.resolve(&container.image_id)?;
        self.write_changes(&container, &self.images.layer_dirs(&image), Some(newest))
    }

    /// Image `name`'s filesystem, mounted read-only for reading until the value drops.
    pub fn mount_image(&self, name: &str) -> Result<crate::rootfs::ImageRoot> {
        let image = self.images.resolve(name)?;
        let parent = self.data_dir.join("mounts");
        crate::rootfs::ImageRoot::mount(&self.images.layer_dirs(&image), &parent)
    }

    /// The container's changes over `lowers` as a layer blob in the content store.
    fn write_changes(
        &self,
        container: &Container,
        lowers: &[PathBuf],
        newest: Option<u64>,
    ) -> Result<Digest> {
        let overlay = Overlay::of(&self.container_dir(&container.id));
        let mut ingest = self.images.content().ingest()?;
        upper_dir(&overlay, lowers)
            .write_layer(&mut ingest, newest)
            .map_err(|e| Error::Io(overlay.upper().to_path_buf(), e))?;
        Ok(ingest.commit(None)?)
    }

    /// Writes the container's root filesystem, without its volumes, to `out` as a tar.
    pub fn export(&self, name: &str, out: impl Write) -> Result<()> {
        let container = self.container(name)?;
        let (_mounted, root) = self.overlay_root(&container)?;
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        let written = crate::copy::append_root(&mut builder, &root)
            .and_then(|()| builder.into_inner()?.flush());
        written.map_err(|e| Error::Io(root, e))
    }
}

/// Sets what `--change` instructions (`docker import` and `docker commit`: CMD,
/// ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, WORKDIR) say in an image config.
pub fn apply_changes(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for change in changes {
        let (instruction, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((change.as_str(), ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(rest));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(rest));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(rest));
            }
            "USER" => {
                config.insert("User".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(rest));
            }
            "ENV" => {
                let pair = match rest.split_once('=') {
                    Some(_) => rest.to_string(),
                    None => rest.replacen(char::is_whitespace, "=", 1),
                };
                let key = pair.split('=').next().unwrap_or_default().to_string();
                if let Some(Value::Array(env)) = config.get_mut("Env") {
                    env.retain(|e| {
                        e.as_str().and_then(|e| e.split('=').next()) != Some(key.as_str())
                    });
                    env.push(json!(pair));
                }
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') {
                        port.to_string()
                    } else {
                        format!("{port}/tcp")
                    };
                    ports[port] = json!({});
                }
            }
            "LABEL" => {
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                for pair in rest.split_whitespace() {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    labels[key] = json!(value.trim_matches('"'));
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "{other} is not a valid change command"
                )));
            }
        }
    }
    Ok(())
}

/// A CMD or ENTRYPOINT: the JSON form as it is, the shell form under `/bin/sh -c`.
fn command(text: &str) -> Value {
    match serde_json::from_str::<Vec<String>>(text) {
        Ok(words) => json!(words),
        Err(_) => json!(["/bin/sh", "-c", text]),
    }
}

fn upper_dir<'a>(overlay: &'a Overlay, lowers: &'a [PathBuf]) -> UpperDir<'a> {
    UpperDir {
        upper: overlay.upper(),
        lowers,
        hidden: ENGINE_PATHS,
    }
}

/// The config a committed image runs with: its image's, with what the container was
/// created with over it (as `docker inspect` shows its Config).
fn image_config(container: &Container, image: &Value) -> Map<String, Value> {
    let request = &container.request;
    let mut config = match &image["config"] {
        Value::Object(config) => config.clone(),
        _ => Map::new(),
    };
    config.insert("Env".into(), json!(container.env));
    config.insert("WorkingDir".into(), json!(container.working_dir));
    config.insert("User".into(), json!(container.user));
    if let Some(entrypoint) = &request.entrypoint {
        config.insert("Entrypoint".into(), json!(entrypoint));
        // A new entrypoint drops the image's command, as at create.
        config.insert("Cmd".into(), json!(request.cmd));
    } else if let Some(cmd) = &request.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    if !request.stop_signal.is_empty() {
        config.insert("StopSignal".into(), json!(request.stop_signal));
    }
    if let Some(healthcheck) = &request.healthcheck {
        config.insert("Healthcheck".into(), json!(healthcheck));
    }
    merge(
        &mut config,
        "Labels",
        request.labels.as_ref().map(|l| json!(l)),
    );
    merge(
        &mut config,
        "ExposedPorts",
        request.exposed_ports.as_ref().map(|p| json!(p)),
    );
    merge(
        &mut config,
        "Volumes",
        request.volumes.as_ref().map(|v| json!(v)),
    );
    config
}

/// Adds the entries of `extra` (an object) to the object under `key`.
fn merge(config: &mut Map<String, Value>, key: &str, extra: Option<Value>) {
    let Some(Value::Object(extra)) = extra else {
        return;
    };
    let entry = config.entry(key).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    if let Value::Object(map) = entry {
        map.extend(extra);
    }
}
