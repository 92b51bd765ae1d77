//! Layer unpacking: one streaming pass per layer that decompresses, verifies and writes,
//! and never writes outside its target.
//!
//! A layer comes from anyone who can push an image, so every entry is distrusted: paths
//! are resolved component by component beneath the target with `openat2`
//! (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so neither `..`, an absolute path nor a
//! symlink planted by an earlier entry can lead out; hard links must point at an entry
//! of the same layer; duplicate entries, unknown entry types and truncated data are
//! refused with the entry's name. Whiteouts become overlayfs whiteouts (a 0:0 character
//! device) and opaque markers the `trusted.overlay.opaque` attribute, so that the
//! unpacked directory is directly an overlay lower layer.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::error::IoContext;
use crate::{Error, Result};

/// What unpacking a layer found out about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Digest of the layer as given (compressed or not): its blob address.
    pub digest: Digest,
    /// Digest of the uncompressed tar: the image config's diff_id.
    pub diff_id: Digest,
    /// Bytes of uncompressed tar.
    pub size: u64,
}

/// Unpacks the layer read from `input` (a tar, gzip-compressed or not) into `target`,
/// an empty directory, and returns its digests for the caller to verify.
pub fn unpack_layer(input: impl Read, target: &Path) -> Result<Unpacked> {
    unpack(input, target, Mode::Layer)
}

/// Extracts an archive into an existing directory (`docker cp` into a container), with
/// the same confinement as a layer: existing files and symlinks are replaced, `.wh.`
/// names are ordinary files, and nothing lands outside `target`.
pub fn extract_into(input: impl Read, target: &Path) -> Result<()> {
    unpack(input, target, Mode::Copy).map(|_| ())
}

/// What the archive is.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// An image layer into an empty directory, whiteouts translated for overlayfs.
    Layer,
    /// A copy into a directory that has content already.
    Copy,
}

fn unpack(input: impl Read, target: &Path, mode: Mode) -> Result<Unpacked> {
    let mut extractor = Extractor::new(target, mode)?;
    let mut compressed = BufReader::with_capacity(1 << 16, HashingReader::new(input));
    let (diff_id, size) = {
        let decompressed = decompressed(&mut compressed).at(target)?;
        let mut tar_stream = HashingReader::new(decompressed);
        let mut archive = tar::Archive::new(&mut tar_stream);
        let entries = archive.entries().map_err(|e| corrupt(&e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt(&e))?;
            extractor.extract(&mut entry)?;
        }
        tar_stream.finish().map_err(|e| corrupt(&e))?
    };
    let (digest, _) = compressed.into_inner().finish().map_err(|e| corrupt(&e))?;
    Ok(Unpacked {
        digest,
        diff_id,
        size,
    })
}

/// The tar stream inside `input`, which is gzip-compressed, zstd-compressed or plain:
/// told apart by their magic numbers, as Docker does.
pub(crate) fn decompressed<'a>(
    input: &'a mut (impl BufRead + 'a),
) -> std::io::Result<Box<dyn Read + 'a>> {
    let head = input.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(input)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(input)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(input))
    }
}

fn corrupt(error: &std::io::Error) -> Error {
    Error::Invalid {
        what: "layer".into(),
        reason: format!("not a readable tar stream: {error}"),
    }
}

fn unsafe_entry(path: &[u8], reason: impl Into<String>) -> Error {
    Error::Unsafe {
        path: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
    }
}

/// The state of one layer's extraction.
struct Extractor {
    root: OwnedFd,
    root_path: PathBuf,
    /// Every path written so far, to refuse duplicates and check hard-link sources.
    seen: HashSet<Vec<u8>>,
    mode: Mode,
}

impl Extractor {
    fn new(target: &Path, mode: Mode) -> Result<Self> {
        let mut listing = std::fs::read_dir(target).at(target)?;
        if mode == Mode::Layer && listing.next().is_some() {
            return Err(Error::Invalid {
                what: "unpack target".into(),
                reason: format!("{} is not empty", target.display()),
            });
        }
        let root = nix::fcntl::open(
            target,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .at(target)?;
        Ok(Self {
            // SAFETY: a fresh descriptor from open.
            root: unsafe { OwnedFd::from_raw_fd(root) },
            root_path: target.to_path_buf(),
            seen: HashSet::new(),
            mode,
        })
    }

    fn extract<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        let components = components(&raw)?;
        let Some((name, parents)) = components.split_last() else {
            return Ok(()); // The layer's root directory itself.
        };
        let path = components.join(&b'/');
        if !self.seen.insert(path.clone()) {
            return Err(unsafe_entry(&raw, "appears twice in the layer"));
        }
        let parent = self.directory(parents, &raw)?;
        if let Some(hidden) = name
            .strip_prefix(b".wh.")
            .filter(|_| self.mode == Mode::Layer)
        {
            return self.whiteout(&parent, hidden, parents, &raw);
        }
        let header = entry.header();
        let owner = owner(header, &raw)?;
        let mode = header
            .mode()
            .map_err(|e| unsafe_entry(&raw, e.to_string()))?
            & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let name_c = c_name(name, &raw)?;
        if self.mode == Mode::Copy && kind != tar::EntryType::Directory {
            replace_existing(&parent, &name_c).map_err(|e| io_error(&raw, e))?;
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let file = create_file(&parent, &name_c).map_err(|e| io_error(&raw, e))?;
                let mut file = std::fs::File::from(file);
                let expected = entry.size();
                let copied = std::io::copy(entry, &mut file).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => unsafe_entry(&raw, "data is truncated"),
                    _ => Error::Io {
                        path: PathBuf::from(OsStr::from_bytes(&raw)),
                        source: e,
                    },
                })?;
                if copied != expected {
                    return Err(unsafe_entry(&raw, "data is truncated"));
                }
                set_attributes(&OwnedFd::from(file), owner, mode, mtime)
                    .map_err(|e| io_error(&raw, e))
            }
            tar::EntryType::Directory => {
                match nix::sys::stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    name_c.as_c_str(),
                    nix::sys::stat::Mode::from_bits_truncate(0o700),
                ) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(io_error(&raw, e)),
                }
                let dir = open_beneath(&parent, &name_c, libc::O_RDONLY | libc::O_DIRECTORY)
                    .map_err(|e| io_error(&raw, e))?;
                set_attributes(&dir, owner, mode, mtime).map_err(|e| io_error(&raw, e))
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_entry(&raw, "symlink without a target"))?;
                let target = CString::new(target.into_owned())
                    .map_err(|_| unsafe_entry(&raw, "NUL in the symlink target"))?;
                nix::unistd::symlinkat(
                    target.as_c_str(),
                    Some(parent.as_raw_fd()),
                    name_c.as_c_str(),
                )
                .map_err(|e| io_error(&raw, e))?;
                lchown(&parent, &name_c, owner).map_err(|e| io_error(&raw, e))
            }
            tar::EntryType::Link => self.hard_link(entry, &parent, &name_c, &raw),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                mknod(
                    &parent,
                    &name_c,
                    file_type | mode,
                    libc::makedev(major, minor),
                )
                .map_err(|e| io_error(&raw, e))?;
                lchown(&parent, &name_c, owner).map_err(|e| io_error(&raw, e))
            }
            other => Err(unsafe_entry(
                &raw,
                format!("unsupported entry type {other:?}"),
            )),
        }
    }

    /// The directory `parents` beneath the root, made where missing; a component that
    /// is a symlink or not a directory is refused.
    fn directory(&self, parents: &[&[u8]], raw: &[u8]) -> Result<OwnedFd> {
        let mut current = self.root.try_clone().at(&self.root_path)?;
        for component in parents {
            let name = c_name(component, raw)?;
            let opened = match open_beneath(&current, &name, libc::O_PATH | libc::O_DIRECTORY) {
                Err(nix::errno::Errno::ENOENT) => {
                    nix::sys::stat::mkdirat(
                        Some(current.as_raw_fd()),
                        name.as_c_str(),
                        nix::sys::stat::Mode::from_bits_truncate(0o755),
                    )
                    .map_err(|e| io_error(raw, e))?;
                    open_beneath(&current, &name, libc::O_PATH | libc::O_DIRECTORY)
                }
                other => other,
            };
            current = opened.map_err(|e| match e {
                nix::errno::Errno::ELOOP
                | nix::errno::Errno::ENOTDIR
                | nix::errno::Errno::EXDEV => {
                    unsafe_entry(raw, "goes through a symlink or a non-directory")
                }
                e => io_error(raw, e),
            })?;
        }
        Ok(current)
    }

    fn whiteout(
        &self,
        parent: &OwnedFd,
        hidden: &[u8],
        parents: &[&[u8]],
        raw: &[u8],
    ) -> Result<()> {
        if hidden == b".wh..opq" {
            let dir = open_beneath(parent, c".", libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| io_error(raw, e))?;
            // SAFETY: fsetxattr on a descriptor we own with NUL-terminated name and a
            // value buffer of the given length.
            let rc = unsafe {
                libc::fsetxattr(
                    dir.as_raw_fd(),
                    c"trusted.overlay.opaque".as_ptr(),
                    b"y".as_ptr().cast(),
                    1,
                    0,
                )
            };
            return nix::errno::Errno::result(rc)
                .map(|_| ())
                .map_err(|e| io_error(raw, e));
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.starts_with(b".wh.") {
            return Err(unsafe_entry(raw, "not a valid whiteout"));
        }
        let mut hidden_path = parents.join(&b'/');
        if !hidden_path.is_empty() {
            hidden_path.push(b'/');
        }
        hidden_path.extend_from_slice(hidden);
        if !self.seen.contains(&hidden_path) {
            let name = c_name(hidden, raw)?;
            return mknod(parent, &name, libc::S_IFCHR, libc::makedev(0, 0))
                .map_err(|e| io_error(raw, e));
        }
        Err(unsafe_entry(raw, "whites out an entry of its own layer"))
    }

    fn hard_link<R: Read>(
        &self,
        entry: &tar::Entry<R>,
        parent: &OwnedFd,
        name: &CString,
        raw: &[u8],
    ) -> Result<()> {
        let source = entry
            .link_name_bytes()
            .ok_or_else(|| unsafe_entry(raw, "hard link without a target"))?;
        let source_components = components(&source)?;
        let Some((source_name, source_parents)) = source_components.split_last() else {
            return Err(unsafe_entry(raw, "hard link to the layer's root"));
        };
        if !self.seen.contains(&source_components.join(&b'/')) {
            return Err(unsafe_entry(
                raw,
                "hard link to something outside this layer",
            ));
        }
        let source_dir = self.directory(source_parents, raw)?;
        let source_name = c_name(source_name, raw)?;
        nix::unistd::linkat(
            Some(source_dir.as_raw_fd()),
            source_name.as_c_str(),
            Some(parent.as_raw_fd()),
            name.as_c_str(),
            nix::fcntl::AtFlags::empty(),
        )
        .map_err(|e| io_error(raw, e))
    }
}

/// The path's components with `.` and empty ones dropped (so `/a//./b` is `a/b`, as
/// Docker reads absolute entries); `..` is refused.
fn components(raw: &[u8]) -> Result<Vec<&[u8]>> {
    let mut parts = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(unsafe_entry(raw, "'..' would leave the layer")),
            part => parts.push(part),
        }
    }
    Ok(parts)
}

fn c_name(name: &[u8], raw: &[u8]) -> Result<CString> {
    CString::new(name).map_err(|_| unsafe_entry(raw, "NUL in the path"))
}

fn owner(header: &tar::Header, raw: &[u8]) -> Result<(u32, u32)> {
    // An empty owner field (some writers leave it NUL) reads as 0, as GNU tar reads it.
    let id = |value: std::io::Result<u64>| {
        u32::try_from(value.unwrap_or(0)).map_err(|_| unsafe_entry(raw, "owner id out of range"))
    };
    Ok((id(header.uid())?, id(header.gid())?))
}

fn io_error(raw: &[u8], error: nix::errno::Errno) -> Error {
    Error::Io {
        path: PathBuf::from(OsStr::from_bytes(raw)),
        source: std::io::Error::from(error),
    }
}

/// Opens `name` beneath `dir`, refusing any symlink on the way.
fn open_beneath(dir: &OwnedFd, name: &std::ffi::CStr, flags: i32) -> nix::Result<OwnedFd> {
    use crate::resolve::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};
    let resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    crate::resolve::openat2(dir, name, flags | libc::O_NOFOLLOW, resolve)
}

/// Removes what a copied entry replaces (a file or symlink; a directory stays and then
/// refuses the entry, as Docker refuses to overwrite a directory with a non-directory).
fn replace_existing(dir: &OwnedFd, name: &CString) -> nix::Result<()> {
    match nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name.as_c_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EISDIR) => Ok(()),
        Err(e) => Err(e),
    }
}

fn create_file(dir: &OwnedFd, name: &CString) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name.as_c_str(),
        nix::fcntl::OFlag::O_WRONLY
            | nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )?;
    // SAFETY: a fresh descriptor from openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mknod(dir: &OwnedFd, name: &CString, mode: u32, device: libc::dev_t) -> nix::Result<()> {
    // SAFETY: mknodat with a NUL-terminated name.
    let rc = unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, device) };
    nix::errno::Errno::result(rc).map(|_| ())
}

fn lchown(dir: &OwnedFd, name: &CString, (uid, gid): (u32, u32)) -> nix::Result<()> {
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name.as_c_str(),
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// Owner, then mode (chown clears set-id bits), then modification time.
fn set_attributes(fd: &OwnedFd, (uid, gid): (u32, u32), mode: u32, mtime: u64) -> nix::Result<()> {
    nix::unistd::fchown(fd.as_raw_fd(), Some(uid.into()), Some(gid.into()))?;
    nix::sys::stat::fchmod(
        fd.as_raw_fd(),
        nix::sys::stat::Mode::from_bits_truncate(mode),
    )?;
    let time = nix::sys::time::TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::futimens(fd.as_raw_fd(), &time, &time)
}
