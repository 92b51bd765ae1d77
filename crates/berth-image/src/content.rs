//! The content store: blobs addressed by their sha256 digest, the way containerd's
//! content store is used. Lifecycle: **ingest** (stream bytes into a private temp file
//! while hashing them), **commit** (verify the digest the caller expects, fsync, rename
//! into `blobs/sha256/<hex>`: a blob is either whole and verified or absent), **provide**
//! (open or read a blob, verifying small ones on every read), **manage** (check, delete).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::IoContext;
use crate::{Error, Result};

/// Blobs under one directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

/// A blob being written: bytes go to a temp file and into the hash.
pub struct Ingest {
    file: std::fs::File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    /// Bytes handed to the disk's writeback so far (see [`WRITEBACK_EVERY`]).
    written_back: u64,
    blobs: PathBuf,
}

/// How many bytes an ingest lets gather before it starts writing them to disk: the
/// commit's fsync then waits only for the last few, so writing a large blob overlaps
/// receiving it instead of following it.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl ContentStore {
    /// The store under `root` (created if missing).
    pub fn open(root: &Path) -> Result<Self> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        Ok(Self { blobs, ingest })
    }

    /// Starts writing a blob.
    pub fn ingest(&self) -> Result<Ingest> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.ingest)
            .at(&self.ingest)?;
        let (file, path) = file.keep().map_err(|e| Error::Io {
            path: self.ingest.clone(),
            source: e.error,
        })?;
        Ok(self.ingest_of(file, path, Sha256::new(), 0))
    }

    /// Starts writing a blob under `name` in the ingest directory, so that a process
    /// after this one can go on with it ([`ContentStore::resume`]): a registry's upload
    /// outlives a restart. Names are letters, digits, `-` and `_`.
    pub fn ingest_named(&self, name: &str) -> Result<Ingest> {
        let path = self.ingest_path(name)?;
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        Ok(self.ingest_of(file, path, Sha256::new(), 0))
    }

    /// The ingest `name` that this or an earlier process began, its bytes so far read
    /// again into the hash; None when there is none.
    pub fn resume(&self, name: &str) -> Result<Option<Ingest>> {
        let path = self.ingest_path(name)?;
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut file, &mut hasher).at(&path)?;
        Ok(Some(self.ingest_of(file, path, hasher, size)))
    }

    fn ingest_path(&self, name: &str) -> Result<PathBuf> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::Invalid {
                what: "upload name".into(),
                reason: format!("{name:?}: letters, digits, - and _ only"),
            });
        }
        Ok(self.ingest.join(name))
    }

    fn ingest_of(&self, file: std::fs::File, path: PathBuf, hasher: Sha256, size: u64) -> Ingest {
        Ingest {
            file,
            path,
            hasher,
            size,
            written_back: size,
            blobs: self.blobs.clone(),
        }
    }

    /// Stores `data` in one step, verified against `expected` when given.
    pub fn put(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let mut ingest = self.ingest()?;
        ingest.write_all(data).at(&ingest.path)?;
        ingest.commit(expected)
    }

    /// Where blob `digest` lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether blob `digest` is in the store.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a (small) blob whole, verifying it against its address.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let data = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(digest.to_string()),
            _ => Error::Io { path, source: e },
        })?;
        digest.verify(&Digest::of(&data), format!("blob {digest}"))?;
        Ok(data)
    }

    /// Opens a blob for streaming; its reader verifies it (unpacking hashes it anyway).
    pub fn open_blob(&self, digest: &Digest) -> Result<std::fs::File> {
        let path = self.path(digest);
        std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(digest.to_string()),
            _ => Error::Io { path, source: e },
        })
    }

    /// Removes a blob; a missing one is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }
}

impl Ingest {
    /// Verifies, syncs and moves the blob into place; returns its digest.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest> {
        let hasher = std::mem::take(&mut self.hasher);
        let actual = Digest::parse(&format!("sha256:{}", hex::encode(hasher.finalize())))?;
        if let Some(expected) = expected {
            expected.verify(&actual, "blob")?;
        }
        self.file.sync_all().at(&self.path)?;
        let target = self.blobs.join(actual.hex());
        std::fs::rename(&self.path, &target).at(&target)?;
        Ok(actual)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Starts writing what gathered since the last call to disk, without waiting for it
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). A hint only: the commit's fsync is
    /// what makes the blob durable and reports what failed.
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd as _;
        let (offset, length) = (self.written_back, self.size - self.written_back);
        // SAFETY: sync_file_range reads no memory of ours; the descriptor is the open
        // file this ingest owns.
        let _ = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset as libc::off64_t,
                length as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.written_back = self.size;
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if self.size - self.written_back >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // After a commit the file was renamed away and this finds nothing.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_verified_on_commit_and_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = store.put(b"config", None).unwrap();
        assert_eq!(digest, Digest::of(b"config"));
        assert_eq!(store.read(&digest).unwrap(), b"config");
        let wrong = Digest::of(b"other");
        assert!(matches!(
            store.put(b"config", Some(&wrong)),
            Err(Error::DigestMismatch { .. })
        ));
        std::fs::write(store.path(&digest), b"tampered").unwrap();
        assert!(matches!(
            store.read(&digest),
            Err(Error::DigestMismatch { .. })
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("ingest"))
                .unwrap()
                .count(),
            0
        );
    }
}
