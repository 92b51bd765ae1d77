//! Why the image store refused or failed: each variant names what was wrong and where.

use std::path::PathBuf;

use crate::digest::Digest;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An archive or layer entry that would write outside its target, or that the store
    /// does not accept (a duplicate, a link out of the layer, an unknown entry type).
    #[error("unsafe archive entry {path:?}: {reason}")]
    Unsafe {
        /// The entry's path as the archive gave it.
        path: String,
        /// What makes it unsafe.
        reason: String,
    },
    /// Content whose digest is not the one it was addressed or announced by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified (a blob, a layer's diff_id).
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// An archive, manifest or config that cannot be read as what it claims to be.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A registry that could not be reached or answered what a pull cannot use, in its
    /// words.
    #[error("{0}")]
    Registry(String),
    /// What a registry does not have, or will not show: the manifest, the repository.
    #[error("{0}")]
    RegistryMissing(String),
    /// A registry that would not let these credentials in.
    #[error("{0}")]
    RegistryDenied(String),
    /// No image, tag or blob of that name.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A file of the store or of the target could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// The image store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the path to an I/O error.
pub(crate) trait IoContext<T> {
    /// Names `path` as the file the error happened on.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|errno| Error::Io {
            path: path.into(),
            source: std::io::Error::from(errno),
        })
    }
}
