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
#[derive(Default)]
struct Entries {
    /// Directories already in the layer: a layer names each path once.
    directories: std::collections::HashSet<PathBuf>,
    uid: u64,
    gid: u64,
    mode: Option<u32>,
    mtime: u64,
    /// ADD: a local tar archive (plain or gzip) is unpacked, not copied.
    extract: bool,
}

/// What a COPY or ADD writes.
#[derive(Debug, Clone, Copy)]
pub struct CopySpec<'a> {
    /// Where sources are found: the context, or a stage's or image's root.
    pub context: &'a Path,
    /// Source paths (globs allowed), relative to `context`.
    pub sources: &'a [String],
    /// A here-document's text, written to `dest` instead of sources.
    pub inline: Option<&'a str>,
    /// Where they land, absolute in the image.
    pub dest: &'a Path,
    /// The numeric owner and group of every entry (`--chown`).
    pub owner: (u64, u64),
    /// The mode of every entry (`--chmod`).
    pub chmod: Option<u32>,
    /// ADD: unpack local tar archives into `dest`.
    pub extract: bool,
    /// The entries' time.
    pub mtime: u64,
}

/// Writes what `spec` says as a layer in `content`; its digest and whether the store
/// had it already (the step was cached), or what is wrong in Docker's words. The layer
/// is hashed first and written only when the content store lacks it, so an unchanged
/// COPY costs a read of its sources and no write.
pub fn copy_layer(content: &ContentStore, spec: &CopySpec<'_>) -> Result<(Digest, bool), String> {
    let sources = matching(spec.context, spec.sources)?;
    let write = |out: &mut dyn Write| {
        let mut entries = Entries {
            uid: spec.owner.0,
            gid: spec.owner.1,
            mode: spec.chmod,
            mtime: spec.mtime,
            extract: spec.extract,
            ..Entries::default()
        };
        match spec.inline {
            Some(text) => entries.inline(out, spec.dest, text),
            None => entries.write(out, spec.context, &sources, spec.dest),
        }
    };
    let digest = digest_of(&write)?;
    if content.contains(&digest) {
        return Ok((digest, true));
    }
    let mut ingest = content.ingest().map_err(|e| e.to_string())?;
    write(&mut ingest)?;
    let written = ingest.commit(Some(&digest)).map_err(|e| e.to_string())?;
    Ok((written, false))
}

/// The digest of what `write` writes.
fn digest_of(write: &dyn Fn(&mut dyn Write) -> Result<(), String>) -> Result<Digest, String> {
    let mut hasher = Sha256::new();
    write(&mut hasher)?;
    Digest::parse(&format!("sha256:{}", hex::encode(hasher.finalize()))).map_err(|e| e.to_string())
}

/// `source` of `root` (its root for `.`), checked not to climb out of it, with the digest
/// of the layer COPY would make of it: what a bind mount of it adds to a RUN step's
/// cache key, so the step runs again when the files it reads change.
pub fn tree_digest(root: &Path, source: &str) -> Result<(PathBuf, Digest), String> {
    let path = inside(root, source)?;
    let sources = [source.to_string()];
    let write = |out: &mut dyn Write| Entries::default().write(out, root, &sources, Path::new("/"));
    Ok((path, digest_of(&write)?))
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
        self.ancestors(&mut archive, &dest)?;
        for source in sources {
            let path = inside(context, source)?;
            let metadata = std::fs::symlink_metadata(&path).map_err(|_| {
                format!(
                    "file not found in build context or excluded by .dockerignore: stat {source}: file does not exist"
                )
            })?;
            if metadata.is_dir() {
                self.tree(&mut archive, &path, &dest)?;
            } else if self.extract && is_tar_archive(&path)? {
                if !dest.as_os_str().is_empty() {
                    self.directory(&mut archive, &dest, 0o755)?;
                }
                self.unpack(&mut archive, &path, &dest)?;
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
    /// A here-document's text as the file `dest`, with its parent directories.
    fn inline(&mut self, out: &mut dyn Write, dest: &Path, text: &str) -> Result<(), String> {
        if dest.to_string_lossy().ends_with('/') {
            return Err(
                "COPY of a heredoc into a directory is not supported yet: name the file".into(),
            );
        }
        let mut archive = tar::Builder::new(out);
        let dest = relative(dest);
        self.ancestors(&mut archive, &dest)?;
        let mut header = self.header(tar::EntryType::Regular, 0o644);
        header.set_size(text.len() as u64);
        archive
            .append_data(&mut header, &dest, text.as_bytes())
            .and_then(|()| archive.into_inner())
            .and_then(|out| out.flush())
            .map_err(|e| e.to_string())
    }

    /// The directories above `path`, as entries of their own.
    fn ancestors<W: Write>(
        &mut self,
        archive: &mut tar::Builder<W>,
        path: &Path,
    ) -> Result<(), String> {
        let ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        for ancestor in ancestors.into_iter().rev() {
            if !ancestor.as_os_str().is_empty() {
                self.directory(archive, ancestor, 0o755)?;
            }
        }
        Ok(())
    }

    /// ADD of a local archive: its entries under `dest`, kept in the archive's order with
    /// its modes; owned by `--chown`'s owner when given, else as the archive says; dated
    /// at the build's epoch like every entry.
    fn unpack<W: Write>(
        &mut self,
        archive: &mut tar::Builder<W>,
        path: &Path,
        dest: &Path,
    ) -> Result<(), String> {
        let failed = |e: std::io::Error| format!("{}: {e}", path.display());
        let file = std::fs::File::open(path).map_err(failed)?;
        let mut reader = std::io::BufReader::new(file);
        let gzip = std::io::BufRead::fill_buf(&mut reader)
            .map_err(failed)?
            .starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn std::io::Read> = if gzip {
            Box::new(flate2::read::GzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut input = tar::Archive::new(input);
        for entry in input.entries().map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let name = entry.path().map_err(failed)?.into_owned();
            let inner = relative(&name);
            if inner.components().any(|c| c == Component::ParentDir) {
                return Err(format!(
                    "{}: entry {} climbs out of the archive",
                    path.display(),
                    name.display()
                ));
            }
            let target = dest.join(&inner);
            let mut header = entry.header().clone();
            if self.uid != 0 || self.gid != 0 {
                header.set_uid(self.uid);
                header.set_gid(self.gid);
            }
            header.set_mtime(self.mtime);
            if let Some(mode) = self.mode {
                header.set_mode(mode);
            }
            let kind = header.entry_type();
            if kind.is_dir() {
                if !self.directories.insert(target.clone()) {
                    continue;
                }
                archive.append_data(&mut header, &target, std::io::empty())
            } else if kind.is_hard_link() {
                let link = entry.link_name().map_err(failed)?.unwrap_or_default();
                archive.append_link(&mut header, &target, dest.join(relative(&link)))
            } else if kind.is_symlink() {
                let link = entry
                    .link_name()
                    .map_err(failed)?
                    .unwrap_or_default()
                    .into_owned();
                archive.append_link(&mut header, &target, link)
            } else {
                archive.append_data(&mut header, &target, entry)
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(())
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

/// Whether `path` is a tar archive, plain or gzip-compressed, which ADD unpacks; other
/// compressions ADD would unpack are refused rather than copied as they are.
fn is_tar_archive(path: &Path) -> Result<bool, String> {
    let mut head = [0u8; 512];
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let read = std::io::Read::read(&mut file, &mut head).map_err(failed)?;
    let head = &head[..read];
    let compressed = [
        (&b"BZh"[..], "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0][..], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], "zstd"),
    ];
    if let Some((_, name)) = compressed.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Err(format!(
            "{}: ADD of a {name} archive is not supported yet",
            path.display()
        ));
    }
    let is_tar = |head: &[u8]| head.len() >= 262 && &head[257..262] == b"ustar";
    if !head.starts_with(&[0x1f, 0x8b]) {
        return Ok(is_tar(head));
    }
    // A gzip file is unpacked only when it holds a tar, as Docker does.
    let mut inner = Vec::with_capacity(512);
    let file = std::fs::File::open(path).map_err(failed)?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(flate2::read::GzDecoder::new(file), 512),
        &mut inner,
    )
    .map_err(failed)?;
    Ok(is_tar(&inner))
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
