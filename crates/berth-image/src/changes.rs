//! What a container changed in its image, read from its overlayfs upper directory: as
//! Docker's change list (`docker diff`) and as an image layer (`docker commit`).
//!
//! The upper directory holds what was written: new and copied-up files, directories
//! copied up because something below them changed, overlayfs whiteouts (a 0:0 character
//! device) for what was deleted, and the `trusted.overlay.opaque` attribute on a
//! directory that replaced the one below it. A layer says the same with `.wh.` files, the
//! format [`crate::unpack_layer`] reads back.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How a path differs from the image (Docker's `Kind`: 0, 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// It was in the image and was changed.
    Modified = 0,
    /// It is new.
    Added = 1,
    /// It was in the image and was deleted.
    Deleted = 2,
}

/// One changed path, absolute in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path, absolute in the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// An overlay's upper directory over its lower layers (bottom first), with the paths the
/// engine itself puts there (mount points, /etc/hosts…) left out, as Docker leaves its
/// init layer out.
pub struct UpperDir<'a> {
    /// The upper directory.
    pub upper: &'a Path,
    /// The lower layers, bottom first.
    pub lowers: &'a [PathBuf],
    /// Absolute container paths to leave out, with everything below them.
    pub hidden: &'a [&'a str],
}

/// One entry of the upper directory, as the walk met it.
struct Entry {
    /// Absolute in the container.
    path: String,
    /// Where it is on the host.
    source: PathBuf,
    metadata: std::fs::Metadata,
}

impl Entry {
    fn is_whiteout(&self) -> bool {
        self.metadata.file_type().is_char_device() && self.metadata.rdev() == 0
    }

    fn is_opaque(&self) -> bool {
        self.metadata.is_dir() && is_opaque(&self.source)
    }
}

impl UpperDir<'_> {
    /// The changes as `docker diff` lists them, sorted by path. A directory that only
    /// holds changes below it counts as modified, as in Docker.
    pub fn changes(&self) -> std::io::Result<Vec<Change>> {
        let mut changes = Vec::new();
        self.changes_below(self.upper, "", &mut changes)?;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Appends the changes below `dir` (absolute in the container as `prefix`); true when
    /// there were any.
    fn changes_below(
        &self,
        dir: &Path,
        prefix: &str,
        changes: &mut Vec<Change>,
    ) -> std::io::Result<bool> {
        let before = changes.len();
        for entry in self.entries(dir, prefix)? {
            if entry.is_whiteout() {
                changes.push(change(entry.path, ChangeKind::Deleted));
                continue;
            }
            let below = self.lower_metadata(&entry.path);
            if entry.metadata.is_dir() {
                let changed_below = self.changes_below(&entry.source, &entry.path, changes)?;
                let kind = match below {
                    None => Some(ChangeKind::Added),
                    Some(lower)
                        if changed_below
                            || entry.is_opaque()
                            || !same_attributes(&lower, &entry.metadata) =>
                    {
                        Some(ChangeKind::Modified)
                    }
                    Some(_) => None,
                };
                changes.extend(kind.map(|kind| change(entry.path, kind)));
            } else if below.is_some() {
                changes.push(change(entry.path, ChangeKind::Modified));
            } else {
                changes.push(change(entry.path, ChangeKind::Added));
            }
        }
        Ok(changes.len() > before)
    }

    /// Writes the changes as an uncompressed layer tar: deletions as `.wh.` files, a
    /// replaced directory with `.wh..opq` in it. With `newest`, no entry is dated after
    /// it (a build's `SOURCE_DATE_EPOCH`, as BuildKit's rewrite-timestamp does), so the
    /// same changes make the same layer whenever they were made.
    pub fn write_layer(&self, out: impl Write, newest: Option<u64>) -> std::io::Result<()> {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        self.append_below(&mut builder, self.upper, "", newest)?;
        builder.into_inner()?.flush()
    }

    fn append_below<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        dir: &Path,
        prefix: &str,
        newest: Option<u64>,
    ) -> std::io::Result<()> {
        for entry in self.entries(dir, prefix)? {
            let name = entry.path.trim_start_matches('/');
            if entry.is_whiteout() {
                let (parent, base) = name.rsplit_once('/').unwrap_or(("", name));
                append_marker(builder, &join(parent, &format!(".wh.{base}")))?;
                continue;
            }
            match newest {
                None => builder.append_path_with_name(&entry.source, name)?,
                Some(newest) => append_dated(builder, &entry, name, newest)?,
            }
            if entry.metadata.is_dir() {
                if entry.is_opaque() {
                    append_marker(builder, &join(name, ".wh..opq"))?;
                }
                self.append_below(builder, &entry.source, &entry.path, newest)?;
            }
        }
        Ok(())
    }

    /// The entries of `dir`, sorted by name, without the hidden ones. A container never
    /// started has no upper directory yet: nothing changed.
    fn entries(&self, dir: &Path, prefix: &str) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let listing = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == self.upper => {
                return Ok(entries);
            }
            listing => listing?,
        };
        for entry in listing {
            let entry = entry?;
            let path = format!("{prefix}/{}", entry.file_name().to_string_lossy());
            if self.hidden.contains(&path.as_str()) {
                continue;
            }
            entries.push(Entry {
                path,
                metadata: std::fs::symlink_metadata(entry.path())?,
                source: entry.path(),
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// The path as the image has it: from the topmost layer that has it or deletes it.
    fn lower_metadata(&self, path: &str) -> Option<std::fs::Metadata> {
        let relative = path.trim_start_matches('/');
        self.lowers.iter().rev().find_map(|layer| {
            let metadata = std::fs::symlink_metadata(layer.join(relative)).ok()?;
            let whiteout = metadata.file_type().is_char_device() && metadata.rdev() == 0;
            Some((!whiteout).then_some(metadata))
        })?
    }
}

fn change(path: String, kind: ChangeKind) -> Change {
    Change { path, kind }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Appends `entry` as `name` with every time in its header at most `newest`.
fn append_dated<W: Write>(
    builder: &mut tar::Builder<W>,
    entry: &Entry,
    name: &str,
    newest: u64,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&entry.metadata, tar::HeaderMode::Complete);
    let mtime = header.mtime()?.min(newest);
    header.set_mtime(mtime);
    if let Some(gnu) = header.as_gnu_mut() {
        gnu.set_atime(mtime);
        gnu.set_ctime(mtime);
    }
    let kind = entry.metadata.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(&entry.source)?;
        builder.append_link(&mut header, name, target)
    } else if kind.is_file() {
        builder.append_data(&mut header, name, std::fs::File::open(&entry.source)?)
    } else {
        header.set_size(0);
        builder.append_data(&mut header, name, std::io::empty())
    }
}

/// An empty regular file that stands for a deletion or an opaque directory.
fn append_marker<W: Write>(builder: &mut tar::Builder<W>, name: &str) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    builder.append_data(&mut header, name, std::io::empty())
}

/// A directory copied up only because something below it changed keeps the image's mode
/// and owner.
fn same_attributes(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.mode() == b.mode() && a.uid() == b.uid() && a.gid() == b.gid()
}

fn is_opaque(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 1];
    // SAFETY: both pointers are valid for the lengths given.
    let read = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    read == 1 && value[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
    }

    /// An image of /etc/passwd, /etc/group and /bin/sh; a container that edited passwd,
    /// deleted group, added /srv/app and only got a hidden /etc/hostname otherwise.
    fn layers() -> (tempfile::TempDir, Vec<PathBuf>, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let lower = root.path().join("lower");
        let upper = root.path().join("upper");
        for dir in ["lower/etc", "lower/bin", "upper/etc", "upper/srv"] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        for file in ["lower/etc/passwd", "lower/etc/group", "lower/bin/sh"] {
            std::fs::write(root.path().join(file), "image").unwrap();
        }
        std::fs::write(upper.join("etc/passwd"), "edited").unwrap();
        std::fs::write(upper.join("etc/hostname"), "engine's").unwrap();
        std::fs::write(upper.join("srv/app"), "new").unwrap();
        whiteout(&upper.join("etc/group"));
        (root, vec![lower], upper)
    }

    #[test]
    fn changes_read_as_docker_diff_reads_them() {
        let (_root, lowers, upper) = layers();
        let dir = UpperDir {
            upper: &upper,
            lowers: &lowers,
            hidden: &["/etc/hostname"],
        };
        let listed: Vec<(String, ChangeKind)> = dir
            .changes()
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        assert_eq!(
            listed,
            [
                ("/etc".to_string(), ChangeKind::Modified),
                ("/etc/group".to_string(), ChangeKind::Deleted),
                ("/etc/passwd".to_string(), ChangeKind::Modified),
                ("/srv".to_string(), ChangeKind::Added),
                ("/srv/app".to_string(), ChangeKind::Added),
            ]
        );
    }

    #[test]
    fn a_directory_holding_only_hidden_paths_is_unchanged() {
        let (_root, lowers, upper) = layers();
        std::fs::create_dir(upper.join("bin")).unwrap();
        std::fs::write(upper.join("bin/mount-point"), "").unwrap();
        let dir = UpperDir {
            upper: &upper,
            lowers: &lowers,
            hidden: &["/etc/hostname", "/bin/mount-point"],
        };
        let paths: Vec<String> = dir.changes().unwrap().into_iter().map(|c| c.path).collect();
        assert!(!paths.contains(&"/bin".to_string()), "{paths:?}");
    }

    #[test]
    fn layers_carry_deletions_as_whiteout_files_and_unpack_back() {
        let (root, lowers, upper) = layers();
        let dir = UpperDir {
            upper: &upper,
            lowers: &lowers,
            hidden: &["/etc/hostname"],
        };
        let mut tar = Vec::new();
        dir.write_layer(&mut tar, None).unwrap();
        let mut names: Vec<String> = tar::Archive::new(tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["etc", "etc/.wh.group", "etc/passwd", "srv", "srv/app"]
        );
        let unpacked = root.path().join("unpacked");
        std::fs::create_dir(&unpacked).unwrap();
        crate::unpack_layer(tar.as_slice(), &unpacked).unwrap();
        let group = std::fs::symlink_metadata(unpacked.join("etc/group")).unwrap();
        assert!(group.file_type().is_char_device() && group.rdev() == 0);
        assert_eq!(
            std::fs::read_to_string(unpacked.join("srv/app")).unwrap(),
            "new"
        );
    }
}
