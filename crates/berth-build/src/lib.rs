//! Dockerfile builds: the Dockerfile read into stages of typed steps (`dockerfile.rs`, on
//! parse-dockerfile's syntax), its words expanded as BuildKit's shell lexer does
//! (`words.rs`), and the steps carried out through berth-engine (`build.rs`): RUN in
//! containers with the network off unless asked and what `--mount` asks mounted
//! (`mounts.rs`), COPY as reproducible layers of the context (`context.rs`), the result
//! committed and tagged only when every step succeeded. A client's side: the context
//! archive without what `.dockerignore` leaves out (`dockerignore.rs`).
//!
//! Depends on berth-engine and berth-image.

mod build;
mod cache;
mod context;
mod dockerfile;
mod dockerignore;
mod mounts;
mod words;

pub use build::{BuildError, BuildRequest, Progress, build, go_duration};
pub use dockerfile::{Command, Dockerfile, DockerfileError, Stage, Step, StepKind};
pub use dockerignore::{DockerIgnore, context_archive};
pub use mounts::{CacheMount, RunMount};

/// The file name a build context is searched for when none is given, as `docker build` does.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";
