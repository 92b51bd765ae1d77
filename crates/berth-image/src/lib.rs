//! Berth's image store: a content-addressed blob store, the OCI and Docker image
//! model, safe streaming layer unpacking and overlay snapshots.
//!
//! Depends on nothing of ours: the engine, the build and the registry sit on top of it.

mod digest;
mod error;
mod unpack;

pub use digest::{Digest, HashingReader};
pub use error::{Error, Result};
pub use unpack::{Unpacked, unpack_layer};
