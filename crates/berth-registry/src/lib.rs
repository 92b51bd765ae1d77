//! The OCI distribution protocol's server side: `berth registry serve` and (to come) the
//! registry inside `berth server`. Storage is content-addressed on disk with blobs shared
//! across repositories (`storage.rs`), the HTTP API in `server.rs` (plain or TLS), basic
//! authentication from an htpasswd file in `auth.rs`, token authentication (JWTs of an
//! authorization server) in `token.rs`, the spec's errors in `errors.rs`,
//! garbage collection while serving in `gc.rs`, the pull-through cache in `proxy.rs`.
//!
//! Depends on berth-image (its content store and digests).

mod auth;
mod errors;
mod gc;
mod mapped;
mod proxy;
mod server;
mod storage;
mod token;

pub use errors::{Code, RegistryError};
pub use gc::{GcPolicy, GcReport};
pub use proxy::Upstream;
pub use server::{ServeOptions, TokenSettings, serve};

pub use storage::{Manifest, Storage, Stored};
