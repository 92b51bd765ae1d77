//! Service rule syncs at scale, for benches/proxy.sh: SERVICES Services of ENDPOINTS
//! endpoints each routed in the calling network namespace (run it in a fresh one), then
//! CHANGES single-endpoint changes, each applied by one sync of only what changed —
//! and, for comparison, the same changes applied by rewriting every Service's rules
//! (what a proxy that resyncs whole does). Prints each's p50 and p99 in milliseconds.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use berth_net::{Endpoint, Protocol, ServiceProxy, ServiceRoute};

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Endpoint number `e`: 10.44.0.0 onwards.
fn endpoint(e: usize) -> Endpoint {
    let [_, x, y, z] = u32::try_from(e).unwrap_or(0).to_be_bytes();
    Endpoint {
        ip: Ipv4Addr::new(10, x.wrapping_add(44), y, z),
        port: 8080,
        local: true,
    }
}

/// Service `i` with `endpoints` endpoints, the first of them numbered from `first`.
fn route(i: usize, endpoints: usize, first: usize) -> ServiceRoute {
    let [_, _, a, b] = u32::try_from(i).unwrap_or(0).to_be_bytes();
    ServiceRoute {
        cluster_ip: Ipv4Addr::new(10, 43, a, b),
        port: 80,
        protocol: Protocol::Tcp,
        node_ports: vec![],
        endpoints: (first..first + endpoints).map(endpoint).collect(),
        affinity: None,
        internal_local: false,
        external_local: false,
    }
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let services = number("SERVICES", 1000);
    let endpoints = number("ENDPOINTS", 10);
    let changes = number("CHANGES", 100);
    let range = "10.42.0.0/24".parse()?;
    let mut wanted: BTreeMap<String, ServiceRoute> = (0..services)
        .map(|i| {
            (
                format!("bench/s{i}/tcp/80"),
                route(i, endpoints, i * endpoints),
            )
        })
        .collect();
    let mut proxy = ServiceProxy::install("berth_bench_proxy", range)?;
    let started = Instant::now();
    proxy.sync(wanted.clone())?;
    println!(
        "initial sync of {services} Services x {endpoints} endpoints: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    // Each change replaces one endpoint of one Service with a new one.
    let mut next = services * endpoints;
    let mut change = |wanted: &mut BTreeMap<String, ServiceRoute>, n: usize| {
        let key = format!("bench/s{}/tcp/80", (n * 7919) % services);
        if let Some(route) = wanted.get_mut(&key) {
            route.endpoints[0] = endpoint(next);
        }
        next += 1;
    };
    let mut incremental = Vec::new();
    for n in 0..changes {
        change(&mut wanted, n);
        let started = Instant::now();
        proxy.sync(wanted.clone())?;
        incremental.push(started.elapsed());
    }
    let mut whole = Vec::new();
    for n in 0..changes.min(20) {
        change(&mut wanted, changes + n);
        let started = Instant::now();
        proxy.remove()?;
        proxy = ServiceProxy::install("berth_bench_proxy", range)?;
        proxy.sync(wanted.clone())?;
        whole.push(started.elapsed());
    }
    proxy.remove()?;
    let (p50, p99) = percentiles(incremental);
    println!("one endpoint changed, synced incrementally: p50 {p50:.1} ms, p99 {p99:.1} ms");
    let (w50, w99) = percentiles(whole);
    println!("one endpoint changed, every rule rewritten:  p50 {w50:.1} ms, p99 {w99:.1} ms");
    println!("rewrite/incremental (p50): {:.0}x", w50 / p50);
    Ok(())
}
