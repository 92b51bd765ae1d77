//! `GET /metrics/resource`, the kubelet's resource metrics in the Prometheus text
//! format: each running pod container's cumulative CPU time and memory working set,
//! read from its cgroup, and the node's. metrics-server scrapes exactly this from every
//! kubelet and turns two scrapes into rates; Berth's API server does the same for
//! metrics.k8s.io (`kubectl top`, the HorizontalPodAutoscaler), and a real
//! metrics-server could scrape Berth's agents too.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_engine::Engine;

use crate::kubelet::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE};

/// One container's reading.
struct ContainerUsage {
    namespace: String,
    pod: String,
    container: String,
    /// CPU time since it started, in seconds.
    cpu_seconds: f64,
    /// Memory in use less what the kernel can reclaim at once (inactive file pages).
    working_set: u64,
}

/// `GET /metrics/resource`.
pub(crate) async fn resource(State(engine): State<Arc<Engine>>) -> Response {
    let read = tokio::task::spawn_blocking(move || (containers(&engine), node())).await;
    let Ok((containers, (node_cpu, node_memory))) = read else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "reading usage failed").into_response();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut text = String::new();
    let cpu = containers.iter().map(|c| (labels(c), c.cpu_seconds));
    series(
        &mut text,
        ("container_cpu_usage_seconds_total", "counter"),
        cpu,
        now,
    );
    let memory = containers.iter().map(|c| (labels(c), c.working_set as f64));
    series(
        &mut text,
        ("container_memory_working_set_bytes", "gauge"),
        memory,
        now,
    );
    let node_cpu = std::iter::once((String::new(), node_cpu));
    series(
        &mut text,
        ("node_cpu_usage_seconds_total", "counter"),
        node_cpu,
        now,
    );
    let node_memory = std::iter::once((String::new(), node_memory as f64));
    series(
        &mut text,
        ("node_memory_working_set_bytes", "gauge"),
        node_memory,
        now,
    );
    let _ = writeln!(text, "# TYPE scrape_error gauge\nscrape_error 0");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// One metric's samples (labels, value) at `now`, after its TYPE line.
fn series(
    text: &mut String,
    (name, kind): (&str, &str),
    samples: impl Iterator<Item = (String, f64)>,
    now: u128,
) {
    let _ = writeln!(text, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let labels = if labels.is_empty() {
            labels
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(text, "{name}{labels} {value} {now}");
    }
}

fn labels(c: &ContainerUsage) -> String {
    format!(
        "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
        c.container, c.namespace, c.pod
    )
}

/// Each running pod container's usage.
fn containers(engine: &Engine) -> Vec<ContainerUsage> {
    engine
        .containers(false)
        .into_iter()
        .filter_map(|container| {
            let labels = container.request.labels.clone().unwrap_or_default();
            let label = |key: &str| labels.get(key).cloned();
            let (namespace, pod, name) = (
                label(POD_NAMESPACE)?,
                label(POD_NAME)?,
                label(CONTAINER_NAME)?,
            );
            let stats = engine.container_stats(&container.id).ok()?;
            let inactive = stats.memory.raw.get("inactive_file").copied().unwrap_or(0);
            Some(ContainerUsage {
                namespace,
                pod,
                container: name,
                cpu_seconds: stats.cpu.usage.total as f64 / 1e9,
                working_set: stats.memory.usage.usage.saturating_sub(inactive),
            })
        })
        .collect()
}

/// The node's busy CPU time in seconds (/proc/stat's, all but idle and iowait) and
/// memory in use (what /proc/meminfo does not count as available).
fn node() -> (f64, u64) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let cpu = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("cpu "))?;
            let times: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|t| t.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest is within user).
            let busy: u64 = times
                .iter()
                .take(8)
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4)
                .map(|(_, t)| t)
                .sum();
            Some(busy as f64 / ticks)
        })
        .unwrap_or(0.0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kib = |key| field(&text, key);
            Some(kib("MemTotal:")?.saturating_sub(kib("MemAvailable:")?) * 1024)
        })
        .unwrap_or(0);
    (cpu, memory)
}

/// The number after `key` on its line of `text`.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == key).then(|| words.next()?.parse().ok())?
    })
}
