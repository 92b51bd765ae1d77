use std::path::PathBuf;

/// Why the runtime refused or failed an operation. Every variant names its cause so the
/// person at the terminal can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json is missing, unreadable or not valid JSON for the spec.
    #[error("invalid bundle config {path}: {reason}")]
    Config {
        /// The config.json in question.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of the spec has a value the runtime cannot honour.
    #[error("invalid config field {field}: {reason}")]
    Field {
        /// The JSON path of the field, e.g. `linux.namespaces[2].type`.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A container id that is empty or holds characters other than `[A-Za-z0-9_+.-]`.
    #[error("invalid container id {0:?}: use letters, digits and _ + . - only")]
    InvalidId(String),
    /// No container of that id under the runtime's root.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container of that id exists already.
    #[error("container {0} already exists")]
    Exists(String),
    /// The operation needs the container in another state.
    #[error("cannot {action} container {id} that is {status}")]
    WrongState {
        /// What was asked, e.g. `delete`, `start`.
        action: &'static str,
        /// The container.
        id: String,
        /// Its current status.
        status: String,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What the runtime was doing, with the path or value involved.
        what: String,
        /// The kernel's answer.
        source: nix::Error,
    },
    /// A file of the runtime's state or of the container could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The container's init process reported a failure while setting itself up.
    #[error("container init failed: {0}")]
    Init(String),
}

/// Result type of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds "what was being done" to a failed system call.
pub(crate) trait SysContext<T> {
    fn or_sys(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn or_sys(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            what: what(),
            source,
        })
    }
}

/// Adds the path to a failed file operation.
pub(crate) trait IoContext<T> {
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
