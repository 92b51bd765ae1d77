//! Compose files, as the compose-spec defines them: found and interpolated from the
//! environment and `.env` (`interpolate.rs`), read into one typed model whatever short or
//! long forms the file used (`model.rs`), and checked, with the spec's keys Berth does not
//! carry out yet refused by name and keys that are not the spec's warned about
//! (`load.rs`). Running a project's services is the engine's, through `berth compose`.
//!
//! Depends on nothing of ours.

mod interpolate;
mod load;
mod model;

pub use interpolate::{InterpolationError, dotenv, interpolate};
pub use load::{ComposeError, FILE_NAMES, Loaded, config_yaml, find, load};
pub use model::{
    Build, Command, Dependency, Deploy, Develop, Healthcheck, Limits, Mount, Network, Port,
    Project, Resources, Service, Volume, WatchAction, WatchRule,
};
