//! Berth's image store: a content-addressed blob store, the OCI and Docker image
//! model, safe streaming layer unpacking and overlay snapshots.
//!
//! Depends on nothing of ours: the engine, the build and the registry sit on top of it.

mod archive;
mod changes;
mod content;
mod digest;
mod download;
mod error;
mod export;
mod pull;
mod push;
mod reference;
mod registry;
mod resolve;
mod store;
mod unpack;

pub use archive::Loaded;
pub use changes::{Change, ChangeKind, UpperDir};
pub use content::{ContentStore, Ingest};
pub use digest::{Digest, HashingReader};
pub use download::download;
pub use error::{Error, Result};
pub use export::CommitNote;
pub use pull::{Fetched, PullProgress, host_architecture};
pub use push::{PushProgress, Pushed};
pub use reference::Reference;
pub use registry::{Credentials, Registry, RegistryOptions};
pub use resolve::open_in_root;
pub use store::{ImageRecord, ImageStore, LayerBlob, LayerRecord, Removed};
pub use unpack::{Unpacked, extract_into, unpack_layer};
