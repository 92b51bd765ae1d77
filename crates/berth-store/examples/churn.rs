//! Lease churn against a datastore, compressed in time: NODES nodes (a 4 KiB Node object
//! each) renew their Leases as fast as 32 writers go, with the history compacted as
//! the API server compacts it for size (`compaction_for_size`). Every window of updates
//! it prints the files' size against the live data, the updates' rate, p50/p99 latency
//! and the CPU the process spent — which must not grow over the run.
//!
//! `churn sqlite:///PATH/state.db UPDATES WINDOW` or `churn etcd://HOST:PORT UPDATES
//! WINDOW DATA_DIR` (the member's directory, whose size is measured). 5,000 nodes
//! renewing every 10 s make 43.2 million updates a day; 432,000 are 24 minutes of it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::Store;

const NODES: usize = 5_000;
const WRITERS: usize = 32;
/// Renewals between two looks at the history, as the server's every 10 s at 500/s.
const CHECK: usize = 5_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, datastore, updates, window, rest @ ..] = args.as_slice() else {
        return Err("usage: churn DATASTORE UPDATES WINDOW [DATA_DIR]".into());
    };
    let (updates, window): (usize, usize) = (updates.parse()?, window.parse()?);
    let files = match (datastore.strip_prefix("sqlite://"), rest.first()) {
        (Some(path), _) => Path::new(path)
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        (None, Some(dir)) => dir.into(),
        (None, None) => return Err("an etcd datastore needs its data directory".into()),
    };
    let store = berth_store::open(datastore).await?;
    let node = vec![b'n'; 4096];
    for i in 0..NODES {
        store
            .create(&format!("/registry/minions/node-{i}"), node.clone())
            .await?;
        store.create(&lease(i), lease_value(0)).await?;
    }
    let live = NODES * (node.len() + lease_value(0).len());
    println!(
        "{NODES} nodes, {updates} lease renewals, live data {}",
        mib(live as u64)
    );
    let mut compacted = 0;
    let mut done = 0;
    while done < updates {
        let count = window.min(updates - done);
        let cpu = cpu_seconds();
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(count);
        let mut peak = 0;
        // The server looks at its history every 10 s: 5,000 renewals at 500 a second.
        for check in (0..count).step_by(CHECK) {
            latencies.extend(renew(&store, done + check, CHECK.min(count - check)).await?);
            peak = peak.max(directory_size(&files));
            let (revision, keys) = (store.revision().await?, store.keys().await?);
            if let Some(target) = berth_store::compaction_for_size(revision, keys, compacted) {
                store.compact(target).await?;
                compacted = target;
            }
        }
        let elapsed = started.elapsed();
        done += count;
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        let size = directory_size(&files);
        println!(
            "after {done:>9} updates: files {} ({:.2}x live, peak {:.2}x), {:.0} updates/s, p50 {:.1} ms, p99 {:.1} ms, cpu {:.1} s",
            mib(size),
            size as f64 / live as f64,
            peak as f64 / live as f64,
            count as f64 / elapsed.as_secs_f64(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            cpu_seconds() - cpu,
        );
    }
    Ok(())
}

fn lease(i: usize) -> String {
    format!("/registry/leases/kube-node-lease/node-{i}")
}

/// A Lease's stored form, about the size of a real one, renewed at `tick`.
fn lease_value(tick: usize) -> Vec<u8> {
    format!("{{\"kind\":\"Lease\",\"spec\":{{\"renewTime\":\"{tick:020}\",\"leaseDurationSeconds\":40,\"holderIdentity\":\"node\"}},\"pad\":\"{}\"}}", "x".repeat(250)).into_bytes()
}

/// Renews `count` Leases from renewal `first` on, WRITERS at a time; each one's latency.
async fn renew(
    store: &Arc<dyn Store>,
    first: usize,
    count: usize,
) -> Result<Vec<Duration>, berth_store::Error> {
    let writers = (0..WRITERS).map(|writer| {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for n in (first + writer..first + count).step_by(WRITERS) {
                let started = Instant::now();
                store.update(&lease(n % NODES), lease_value(n), 0).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, berth_store::Error>(latencies)
        })
    });
    let mut all = Vec::with_capacity(count);
    for writer in futures_util::future::join_all(writers).await {
        all.extend(writer.map_err(|e| berth_store::Error::Backend(e.to_string()))??);
    }
    Ok(all)
}

/// The process's user and system CPU time so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The bytes of the files under `dir`.
fn directory_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
