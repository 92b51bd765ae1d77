//! Layer unpacking: a well-formed layer lands exactly as written, with its whiteouts as
//! overlayfs expects them; the hostile corpus (traversal, symlink and hard-link escapes,
//! whiteout abuse, duplicates, lying sizes, truncated streams) is refused by name with
//! nothing written outside the target.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::{Digest, Error, unpack_layer};

/// A tar built entry by entry with raw names, so that hostile paths go in unchanged.
#[derive(Default)]
struct Layer(Vec<u8>);

impl Layer {
    fn entry(
        mut self,
        path: &[u8],
        kind: tar::EntryType,
        data: &[u8],
        link: Option<&[u8]>,
    ) -> Self {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path);
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(1000);
        header.set_gid(1001);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Self {
        self.entry(path.as_bytes(), tar::EntryType::Regular, data, None)
    }

    fn dir(self, path: &str) -> Self {
        self.entry(path.as_bytes(), tar::EntryType::Directory, b"", None)
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.entry(
            path.as_bytes(),
            tar::EntryType::Symlink,
            b"",
            Some(target.as_bytes()),
        )
    }

    fn hard_link(self, path: &str, target: &str) -> Self {
        self.entry(
            path.as_bytes(),
            tar::EntryType::Link,
            b"",
            Some(target.as_bytes()),
        )
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A jail holding the target and a sibling that must stay untouched.
struct Jail {
    dir: tempfile::TempDir,
}

impl Jail {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), "keep").unwrap();
        Self { dir }
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    /// Every path in the jail outside the target.
    fn outside(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>, skip: &Path) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path == skip {
                    continue;
                }
                found.push(path.clone());
                if entry.file_type().unwrap().is_dir() {
                    walk(&path, found, skip);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.dir.path(), &mut found, &self.target());
        found.sort();
        found
    }
}

#[test]
fn zstd_layers_unpack_and_hash_like_plain_ones() {
    let tar = Layer::default().file("etc/motd", b"zstd\n").finish();
    let compressed =
        ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    let jail = Jail::new();
    let target = jail.target();
    let unpacked = unpack_layer(&compressed[..], &target).unwrap();
    assert_eq!(unpacked.diff_id, Digest::of(&tar));
    assert_eq!(unpacked.digest, Digest::of(&compressed));
    assert_eq!(
        std::fs::read_to_string(target.join("etc/motd")).unwrap(),
        "zstd\n"
    );
}

#[test]
fn a_layer_lands_as_written_with_overlay_whiteouts() {
    let tar = Layer::default()
        .dir("etc/")
        .file("etc/hostname", b"layer\n")
        .file("/usr/bin/tool", b"#!/bin/sh\n")
        .symlink("bin", "usr/bin")
        .hard_link("etc/hostname.bak", "etc/hostname")
        .file(".wh.removed", b"")
        .dir("opaque/")
        .file("opaque/.wh..wh..opq", b"")
        .finish();
    let jail = Jail::new();
    let target = jail.target();
    let unpacked = unpack_layer(&gzip(&tar)[..], &target).unwrap();

    assert_eq!(unpacked.diff_id, Digest::of(&tar));
    assert_eq!(unpacked.digest, Digest::of(&gzip(&tar)));
    assert_eq!(unpacked.size, tar.len() as u64);
    assert_eq!(
        std::fs::read_to_string(target.join("etc/hostname")).unwrap(),
        "layer\n"
    );
    let meta = std::fs::metadata(target.join("etc/hostname")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
        (1000, 1001, 0o644)
    );
    assert_eq!(meta.mtime(), 1_700_000_000);
    assert_eq!(
        meta.ino(),
        std::fs::metadata(target.join("etc/hostname.bak"))
            .unwrap()
            .ino()
    );
    assert_eq!(
        std::fs::read_link(target.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert!(
        target.join("usr/bin/tool").is_file(),
        "absolute paths land inside"
    );
    let whiteout = std::fs::symlink_metadata(target.join("removed")).unwrap();
    assert_eq!(
        (whiteout.mode() & libc::S_IFMT, whiteout.rdev()),
        (libc::S_IFCHR, 0)
    );
    let mut opaque = [0u8; 4];
    let path = std::ffi::CString::new(target.join("opaque").into_os_string().into_encoded_bytes())
        .unwrap();
    // SAFETY: getxattr with NUL-terminated strings and a buffer of the given size.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            opaque.as_mut_ptr().cast(),
            4,
        )
    };
    assert_eq!(&opaque[..n.max(0) as usize], b"y");
    assert!(!target.join("opaque/.wh..wh..opq").exists());
}

/// Unpacks `tar` and expects a refusal whose message holds `expected`, with nothing
/// written outside the target.
fn refused(name: &str, tar: Vec<u8>, expected: &str) {
    let jail = Jail::new();
    let before = jail.outside();
    let error = unpack_layer(&tar[..], &jail.target()).expect_err(name);
    let message = error.to_string();
    assert!(
        message.contains(expected),
        "{name}: expected {expected:?} in {message:?}"
    );
    assert!(
        matches!(error, Error::Unsafe { .. } | Error::Invalid { .. }),
        "{name}: {error:?}"
    );
    assert_eq!(
        jail.outside(),
        before,
        "{name}: something was written outside the target"
    );
    assert_eq!(
        std::fs::read_to_string(jail.dir.path().join("outside/secret")).unwrap(),
        "keep"
    );
}

#[test]
fn the_hostile_corpus_is_refused_and_nothing_lands_outside() {
    refused(
        "dotdot",
        Layer::default().file("../outside/evil", b"x").finish(),
        "'..' would leave",
    );
    refused(
        "nested-dotdot",
        Layer::default()
            .dir("a/")
            .file("a/../../outside/evil", b"x")
            .finish(),
        "'..' would leave",
    );
    refused(
        "symlink-escape",
        Layer::default()
            .symlink("link", "../outside")
            .file("link/evil", b"x")
            .finish(),
        "through a symlink",
    );
    refused(
        "absolute-symlink-escape",
        Layer::default()
            .symlink("etc", "/etc")
            .file("etc/evil", b"x")
            .finish(),
        "through a symlink",
    );
    refused(
        "symlink-then-dir",
        Layer::default()
            .symlink("d", "../outside")
            .dir("d/sub/")
            .finish(),
        "through a symlink",
    );
    refused(
        "hardlink-dotdot",
        Layer::default()
            .hard_link("stolen", "../outside/secret")
            .finish(),
        "'..' would leave",
    );
    refused(
        "hardlink-absolute",
        Layer::default().hard_link("stolen", "/etc/passwd").finish(),
        "outside this layer",
    );
    refused(
        "hardlink-through-symlink",
        Layer::default()
            .symlink("out", "../outside")
            .hard_link("stolen", "out/secret")
            .finish(),
        "outside this layer",
    );
    refused(
        "duplicate",
        Layer::default().file("a", b"1").file("a", b"2").finish(),
        "appears twice",
    );
    refused(
        "whiteout-dot",
        Layer::default().file(".wh..", b"").finish(),
        "not a valid whiteout",
    );
    refused(
        "whiteout-own-entry",
        Layer::default().file("a", b"1").file(".wh.a", b"").finish(),
        "whites out an entry of its own layer",
    );
    let mut huge = Layer::default().file("big", b"only a little data").finish();
    // Claim a terabyte in the size field of the first header (octal, 12 bytes at 124).
    huge[124..136].copy_from_slice(b"17777777777\0");
    let mut header = tar::Header::new_old();
    header.as_mut_bytes().copy_from_slice(&huge[..512]);
    header.set_cksum();
    huge[..512].copy_from_slice(header.as_bytes());
    refused("huge-size", huge, "truncated");
    let gz = gzip(&Layer::default().file("a", &[7u8; 100_000]).finish());
    refused("truncated-gzip", gz[..gz.len() / 2].to_vec(), "truncated");
    refused(
        "unknown-type",
        Layer::default()
            .entry(b"unknown-type", tar::EntryType::new(b'Z'), b"", None)
            .finish(),
        "unsupported entry type",
    );
}

#[test]
fn a_non_empty_target_is_refused() {
    let jail = Jail::new();
    std::fs::write(jail.target().join("existing"), "").unwrap();
    let error = unpack_layer(&Layer::default().finish()[..], &jail.target()).unwrap_err();
    assert!(error.to_string().contains("is not empty"), "{error}");
}
