//! COPY's layer: files of the build context written as an uncompressed tar, the way the
//! Dockerfile reference says they land (a directory's contents into the destination, a
//! file to it or, when it ends in `/` or there are several sources, into it), with every
//! entry in name order, owned by root (or `--chown`), and dated at the build's epoch, so
//! the same context gives the same layer digest.

use std::io::Write;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use berth_image::{ContentStore, Digest};
use sha2::{Digest as _, Sha256};

/// Who owns the copied entries and what mode they get.
struct Entries {
    /// Directories already in the layer: a layer names each path once.
    directories: std::collections::HashSet<PathBuf>,
    uid: u64,
    gid: u64,
    mode: Option<u32>,
    mtime: u64,
}

/// Writes `sources` (relative to `context`) to `dest` (absolute, in the image) as a layer
/// in `content`; its digest, or what is wrong in Docker's words. The layer is hashed
/// first and written only when the content store lacks it, so an unchanged COPY costs a
/// read of its sources and no write.
pub fn copy_layer(
    content: &ContentStore,
    context: &Path,
    sources: &[String],
    dest: &Path,
    chown: Option<&str>,
    chmod: Option<&str>,
    mtime: u64,
) -> Result<Digest, String> {
    let (uid, gid) = match chown {
        Some(owner) => numeric_owner(owner)?,
        None => (0, 0),
    };
    let mode = chmod
        .map(|m| u32::from_str_radix(m, 8).map_err(|_| format!("invalid --chmod={m}")))
        .transpose()?;
    let sources = matching(context, sources)?;
    let write = |out: &mut dyn Write| {
        let mut entries = Entries {
            directories: std::collections::HashSet::new(),
            uid,
            gid,
            mode,
            mtime,
        };
        entries.write(out, context, &sources, dest)
    };
    let mut hasher = Sha256::new();
    write(&mut hasher)?;
    let digest = Digest::parse(&format!("sha256:{}", hex::encode(hasher.finalize())))
        .map_err(|e| e.to_string())?;
    if content.contains(&digest) {
        return Ok(digest);
    }
    let mut ingest = content.ingest().map_err(|e| e.to_string())?;
    write(&mut ingest)?;
    ingest.commit(Some(&digest)).map_err(|e| e.to_string())
}

impl Entries {
    /// The whole layer, as a tar, to `out`.
    fn write(
        &mut self,
        out: &mut dyn Write,
        context: &Path,
        sources: &[String],
        dest: &Path,
    ) -> Result<(), String> {
        let into_dir = sources.len() > 1 || dest.to_string_lossy().ends_with('/');
        let mut archive = tar::Builder::new(out);
        let dest = relative(dest);
        for ancestor in dest
            .ancestors()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !ancestor.as_os_str().is_empty() {
                self.directory(&mut archive, ancestor, 0o755)?;
            }
        }
        for source in sources {
            let path = inside(context, source)?;
            let metadata = std::fs::symlink_metadata(&path).map_err(|_| {
                format!(
                    "file not found in build context or excluded by .dockerignore: stat {source}: file does not exist"
                )
            })?;
            if metadata.is_dir() {
                self.tree(&mut archive, &path, &dest)?;
            } else {
                let name = path.file_name().map(PathBuf::from).unwrap_or_default();
                let target = if into_dir {
                    dest.join(name)
                } else {
                    dest.clone()
                };
                if into_dir && !dest.as_os_str().is_empty() {
                    self.directory(&mut archive, &dest, 0o755)?;
                }
                self.file(&mut archive, &path, &target)?;
            }
        }
        archive
            .into_inner()
            .and_then(|out| out.flush())
            .map_err(|e| e.to_string())
    }
    /// A directory's contents under `target`, in name order, itself included.
    fn tree<W: Write>(
        &mut self,
        archive: &mut tar::Builder<W>,
        dir: &Path,
        target: &Path,
    ) -> Result<(), String> {
        let mode = std::fs::metadata(dir)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        if !target.as_os_str().is_empty() {
            self.directory(archive, target, mode)?;
        }
        let mut children: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        children.sort();
        for child in children {
            let name = child.file_name().map(PathBuf::from).unwrap_or_default();
            let metadata = std::fs::symlink_metadata(&child).map_err(|e| e.to_string())?;
            if metadata.is_dir() {
                self.tree(archive, &child, &target.join(name))?;
            } else {
                self.file(archive, &child, &target.join(name))?;
            }
        }
        Ok(())
    }

    fn header(&self, kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_uid(self.uid);
        header.set_gid(self.gid);
        header.set_mtime(self.mtime);
        header.set_mode(self.mode.unwrap_or(mode) & 0o7777);
        header.set_size(0);
        header
    }

    fn directory<W: Write>(
        &mut self,
        archive: &mut tar::Builder<W>,
        path: &Path,
        mode: u32,
    ) -> Result<(), String> {
        if !self.directories.insert(path.to_path_buf()) {
            return Ok(());
        }
        let mut header = self.header(tar::EntryType::Directory, mode);
        archive
            .append_data(&mut header, path, std::io::empty())
            .map_err(|e| e.to_string())
    }

    fn file<W: Write>(
        &self,
        archive: &mut tar::Builder<W>,
        source: &Path,
        target: &Path,
    ) -> Result<(), String> {
        let metadata = std::fs::symlink_metadata(source).map_err(|e| e.to_string())?;
        if metadata.file_type().is_symlink() {
            let link = std::fs::read_link(source).map_err(|e| e.to_string())?;
            let mut header = self.header(tar::EntryType::Symlink, 0o777);
            return archive
                .append_link(&mut header, target, link)
                .map_err(|e| e.to_string());
        }
        if !metadata.is_file() {
            return Err(format!(
                "{}: only files, directories and links can be copied",
                source.display()
            ));
        }
        let mut header = self.header(tar::EntryType::Regular, metadata.mode());
        header.set_size(metadata.len());
        let file = std::fs::File::open(source).map_err(|e| format!("{}: {e}", source.display()))?;
        archive
            .append_data(&mut header, target, file)
            .map_err(|e| e.to_string())
    }
}

/// The sources with their wildcards (`*`, `?`, `[…]`) replaced by the paths of
/// `context` they match, in name order; a wildcard that matches nothing is an error.
fn matching(context: &Path, sources: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for source in sources {
        if !source.contains(['*', '?', '[']) {
            out.push(source.clone());
            continue;
        }
        let pattern = format!(
            "{}/{}",
            glob::Pattern::escape(&context.to_string_lossy()),
            relative(Path::new(source)).to_string_lossy()
        );
        let found: Vec<String> = glob::glob(&pattern)
            .map_err(|e| format!("{source}: {e}"))?
            .filter_map(Result::ok)
            .filter_map(|path| {
                path.strip_prefix(context)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            })
            .collect();
        if found.is_empty() {
            return Err(format!("lstat {source}: no source files were specified"));
        }
        out.extend(found);
    }
    Ok(out)
}

/// `source` under `context`, refused if it climbs out of it.
fn inside(context: &Path, source: &str) -> Result<PathBuf, String> {
    let relative = relative(Path::new(source));
    if relative.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "forbidden path outside the build context: {source}"
        ));
    }
    Ok(context.join(relative))
}

/// A path without its root, as tar entries name them.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

fn numeric_owner(owner: &str) -> Result<(u64, u64), String> {
    let (user, group) = owner.split_once(':').unwrap_or((owner, owner));
    match (user.parse(), group.parse()) {
        (Ok(uid), Ok(gid)) => Ok((uid, gid)),
        _ => Err(format!(
            "--chown={owner}: user and group names are not supported yet, give numeric ids"
        )),
    }
}
