//! Berth's OCI runtime: runs an OCI bundle as an isolated container — namespaces, cgroups
//! v1 and v2, a pivoted root filesystem with the spec's mounts, masked and read-only paths,
//! capabilities, seccomp, rlimits, users — and keeps per-container state so that create, start,
//! state, kill and delete can be separate commands, as runc's are. The `berth oci` command
//! line is a thin layer over [`Runtime`]; the engine calls it in-process.
//!
//! Depends on nothing of ours. Plain threads, no async: async callers use spawn_blocking.

mod bundle;
mod caps;
pub mod cgroups;
mod console;
mod container;
mod error;
mod fs;
mod hooks;
mod init;
mod mounts;
mod sealed_exe;
mod seccomp;
pub mod state;

pub use bundle::{Bundle, parse_spec, write_default_spec};
pub use caps::capability_names;
pub use console::{receive_master as receive_terminal, set_size as set_terminal_size};
pub use container::{CreateOptions, ExecOptions, Runtime};
pub use error::{Error, Result};
pub use oci_spec::runtime::{LinuxResources, Process};
pub use sealed_exe::run_from_sealed_binary;
pub use seccomp::from_docker_profile;
pub use state::{StateReport, Status};
