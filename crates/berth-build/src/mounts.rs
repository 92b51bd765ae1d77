//! `RUN --mount=…`: what a RUN step sees besides the image so far, as BuildKit defines it.
//!
//! - `type=cache,target=…[,id=…][,sharing=shared|locked][,mode=…][,uid=…][,gid=…][,ro]`:
//!   a directory of the daemon's that outlives builds (package caches), one per `id`
//!   (the target by default); `locked` lets one RUN at a time use it.
//! - `type=tmpfs,target=…[,size=…]`: an empty memory filesystem.
//! - `type=bind,target=…[,source=…][,from=…]`: a read-only view of the context (or of a
//!   stage or image with `from`); its content is part of the step's cache key.
//!
//! What a mount leaves in its target is not part of the step's layer. `type=secret` and
//! `type=ssh`, `sharing=private` and read-write binds are refused by name.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};

/// One `--mount` of a RUN step, its words still to be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// `type=cache`.
    Cache(CacheMount),
    /// `type=tmpfs`.
    Tmpfs {
        /// Where it is mounted.
        target: String,
        /// Its size limit in bytes.
        size: Option<u64>,
    },
    /// `type=bind`.
    Bind {
        /// Where it is mounted.
        target: String,
        /// The path in the context (or the `from` stage or image); its root by default.
        source: String,
        /// The stage or image it comes from, instead of the context.
        from: Option<String>,
    },
}

/// A cache mount's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    /// Where it is mounted.
    pub target: String,
    /// Which cache: RUN steps naming the same id share it.
    pub id: Option<String>,
    /// Whether one RUN at a time holds it (`sharing=locked`).
    pub locked: bool,
    /// The mode of its directory when made.
    pub mode: u32,
    /// The owner of its directory when made.
    pub uid: u32,
    /// The group of its directory when made.
    pub gid: u32,
    /// Mounted read-only.
    pub read_only: bool,
}

impl RunMount {
    /// Reads a `--mount` flag's value: comma-separated `key=value` fields (and the bare
    /// `ro`/`readonly`); what is wrong in BuildKit's terms.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut fields = Vec::new();
        for field in spec.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = field.split_once('=').unwrap_or((field, "true"));
            fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let get = |names: &[&str]| {
            fields
                .iter()
                .rev()
                .find(|(key, _)| names.contains(&key.as_str()))
                .map(|(_, value)| value.clone())
        };
        let kind = get(&["type"]).unwrap_or_else(|| "bind".into());
        let known: &[&str] = match kind.as_str() {
            "cache" => &[
                "type",
                "target",
                "dst",
                "destination",
                "id",
                "sharing",
                "mode",
                "uid",
                "gid",
                "ro",
                "readonly",
                "rw",
                "readwrite",
                "from",
                "source",
                "src",
            ],
            "tmpfs" => &["type", "target", "dst", "destination", "size"],
            "bind" => &[
                "type",
                "target",
                "dst",
                "destination",
                "source",
                "src",
                "from",
                "ro",
                "readonly",
                "rw",
                "readwrite",
            ],
            "secret" | "ssh" => return Err(format!("--mount=type={kind} is not supported yet")),
            other => return Err(format!("unsupported mount type {other:?}")),
        };
        if let Some((key, _)) = fields
            .iter()
            .find(|(key, _)| !known.contains(&key.as_str()))
        {
            return Err(format!("unexpected key {key:?} in --mount=type={kind}"));
        }
        let target = get(&["target", "dst", "destination"])
            .ok_or_else(|| format!("--mount=type={kind} needs a target"))?;
        let flag = |names: &[&str]| get(names).is_some_and(|v| v != "false");
        let number = |name: &str, radix: u32, default: u32| match get(&[name]) {
            Some(value) => u32::from_str_radix(&value, radix)
                .map_err(|_| format!("invalid {name}={value} in --mount")),
            None => Ok(default),
        };
        match kind.as_str() {
            "cache" => {
                if get(&["from", "source", "src"]).is_some() {
                    return Err(
                        "a cache mount from another stage or image is not supported yet".into(),
                    );
                }
                let locked = match get(&["sharing"]).as_deref() {
                    None | Some("shared") => false,
                    Some("locked") => true,
                    Some(other) => {
                        return Err(format!("--mount sharing={other} is not supported yet"));
                    }
                };
                Ok(Self::Cache(CacheMount {
                    target,
                    id: get(&["id"]),
                    locked,
                    mode: number("mode", 8, 0o755)?,
                    uid: number("uid", 10, 0)?,
                    gid: number("gid", 10, 0)?,
                    read_only: flag(&["ro", "readonly"]),
                }))
            }
            "tmpfs" => {
                let size = get(&["size"])
                    .map(|s| bytes(&s).ok_or_else(|| format!("invalid size={s} in --mount")))
                    .transpose()?;
                Ok(Self::Tmpfs { target, size })
            }
            _ => {
                if flag(&["rw", "readwrite"]) {
                    return Err("a read-write bind mount is not supported yet".into());
                }
                Ok(Self::Bind {
                    target,
                    source: get(&["source", "src"]).unwrap_or_else(|| ".".into()),
                    from: get(&["from"]),
                })
            }
        }
    }
}

/// A cache's directory under `data_dir` (made as the mount asks when new), and the
/// lock it holds while a `sharing=locked` RUN uses it. `id` names the cache; its digest
/// names the directory, so no id reaches outside.
pub(crate) fn cache_dir(
    data_dir: &Path,
    cache: &CacheMount,
    id: &str,
) -> Result<(PathBuf, Option<Flock<File>>), String> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let caches = data_dir.join("build-cache");
    let name = hex::encode(Sha256::digest(id.as_bytes()));
    let dir = caches.join(&name);
    let failed = |e: std::io::Error| format!("cache mount {id}: {}: {e}", dir.display());
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(cache.mode)
            .create(&dir)
            .map_err(failed)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(cache.mode))
            .map_err(failed)?;
        std::os::unix::fs::chown(&dir, Some(cache.uid), Some(cache.gid)).map_err(failed)?;
    }
    if !cache.locked {
        return Ok((dir, None));
    }
    let file = File::create(caches.join(format!("{name}.lock"))).map_err(failed)?;
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cache mount {id}: lock: {e}"))?;
    Ok((dir, Some(lock)))
}

/// `64m`, `1g`, `512k`, `1024` as bytes.
fn bytes(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (number, scale) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(number) => {
            let scale = match lower.chars().last() {
                Some('k') => 1 << 10,
                Some('m') => 1 << 20,
                _ => 1 << 30,
            };
            (number, scale)
        }
        None => (lower.as_str(), 1),
    };
    number.parse::<u64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_read_as_buildkit_writes_them() {
        assert_eq!(
            RunMount::parse(
                "type=cache,target=/root/.cache,sharing=locked,id=pip,mode=0700,uid=1000"
            )
            .unwrap(),
            RunMount::Cache(CacheMount {
                target: "/root/.cache".into(),
                id: Some("pip".into()),
                locked: true,
                mode: 0o700,
                uid: 1000,
                gid: 0,
                read_only: false,
            })
        );
        assert_eq!(
            RunMount::parse("type=tmpfs,dst=/scratch,size=64m").unwrap(),
            RunMount::Tmpfs {
                target: "/scratch".into(),
                size: Some(64 << 20)
            }
        );
        assert_eq!(
            RunMount::parse("target=/src,source=app,from=builder").unwrap(),
            RunMount::Bind {
                target: "/src".into(),
                source: "app".into(),
                from: Some("builder".into())
            }
        );
        for (spec, error) in [
            ("type=secret,id=token", "type=secret is not supported yet"),
            ("type=cache", "needs a target"),
            ("type=cache,target=/c,sharing=private", "sharing=private"),
            ("type=bind,target=/c,rw", "read-write bind"),
            (
                "type=tmpfs,target=/t,colour=blue",
                "unexpected key \"colour\"",
            ),
            ("type=volume,target=/t", "unsupported mount type"),
        ] {
            let refused = RunMount::parse(spec).unwrap_err();
            assert!(refused.contains(error), "{spec}: {refused}");
        }
    }
}
