//! Black-box tests of `berth server`, each on the embedded SQLite store and on a real
//! etcd: through the stock kubectl, through kube-rs, and through kill -9.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod aggregation;
mod audit;
mod callees;
mod certificates;
mod client;
mod cluster;
mod cni;
mod custom;
mod disruption;
mod durability;
mod failover;
mod hosts;
mod joining;
mod kinds;
mod kubectl;
mod lifecycle;
mod manifests;
mod metrics;
mod multinode;
mod netpol;
mod operator;
mod placement;
mod pods;
mod podsecurity;
mod policies;
mod probes;
mod pulls;
mod quota;
mod rbac;
mod scenarios;
mod server;
mod services;
mod storage;
mod streams;
mod volumes;
mod webhooks;
mod workloads;
