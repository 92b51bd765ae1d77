//! The controller runner, kube-runtime's `Controller` in our own small crate: shared
//! caches of the watched kinds (one per kind, with an index by owner), and reconcile
//! functions called from a work queue keyed by object — de-duplicated, with back-off on
//! errors, requeue-after, triggers from owned objects and bounded concurrency. Every
//! controller and the agent's pod loop run on it.
//!
//! Depends on nothing of ours: it reaches the cluster only through the Kubernetes API.
//! Why our own rather than kube-runtime's: docs/decisions/0023-the-controller-runner.md.

mod controller;
mod informers;
mod queue;

pub use controller::{Action, Controller, Queue};
pub use informers::{Cache, Cached, ChangedKeys, Changes, Informers};
