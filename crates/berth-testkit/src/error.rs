use std::path::PathBuf;

/// Why the test kit could not build, unpack or verify an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A JSON document of an image could not be parsed.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The image layout is not valid: a digest, size or reference does not match.
    #[error("invalid image layout: {0}")]
    Invalid(String),
    /// A program the kit needs (busybox-static) is not installed.
    #[error("{0} is missing: install it (apt-get install busybox-static)")]
    Missing(PathBuf),
}

/// Attaches the path to an I/O error, so every failure names the file it is about.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
