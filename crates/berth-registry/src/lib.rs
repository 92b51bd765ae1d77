//! The OCI distribution protocol's server side: `berth registry serve` and (to come) the
//! registry inside `berth server`. Storage is content-addressed on disk with blobs shared
//! across repositories (`storage.rs`), the HTTP API in `server.rs` (plain or TLS), basic
//! authentication from an htpasswd file in `auth.rs`, the spec's errors in `errors.rs`.
//!
//! Depends on berth-image (its content store and digests).

mod auth;
mod errors;
mod mapped;
mod server;
mod storage;

pub use errors::{Code, RegistryError};
pub use server::{ServeOptions, serve};
pub use storage::{Manifest, Storage, Stored};
