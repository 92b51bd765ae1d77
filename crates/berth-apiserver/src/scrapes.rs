//! What metrics-server does, built in: every [`INTERVAL`] the API server scrapes the
//! resource metrics of each real node's agent (`GET /metrics/resource`, the kubelet's
//! format: cumulative CPU seconds and memory working sets) and keeps the last two
//! scrapes, whose difference gives each container's and node's CPU rate. metrics.k8s.io
//! answers from them for pods on those nodes; simulated nodes keep reporting usage in
//! pod annotations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::Shared;

/// How often agents are scraped (metrics-server's default resolution is 15 s).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The `containerRuntimeVersion` of simulated nodes, which have no agent to scrape.
const SIMULATED_RUNTIME: &str = "berth://simulated";

/// A container's identity in a scrape: namespace, pod, container.
type ContainerKey = (String, String, String);

/// One scrape of one agent.
#[derive(Debug, Default, Clone)]
struct Sample {
    /// When the agent read it, in milliseconds since the epoch.
    at_ms: u64,
    node_cpu_seconds: f64,
    node_working_set: u64,
    /// Each container's CPU seconds and working set.
    containers: HashMap<ContainerKey, (f64, u64)>,
}

/// A usage: CPU in nanocores and memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// The last two scrapes of each real node.
#[derive(Default)]
pub(crate) struct Scrapes(Mutex<HashMap<String, (Sample, Sample)>>);

impl Scrapes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Sample, Sample)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `node` is scraped (a real node whose agent answered).
    pub(crate) fn covers(&self, node: &str) -> bool {
        self.lock().contains_key(node)
    }

    /// The node's usage over its last two scrapes.
    pub(crate) fn node(&self, node: &str) -> Option<Usage> {
        let scrapes = self.lock();
        let (before, last) = scrapes.get(node)?;
        Some(Usage {
            cpu_nanocores: rate(before, last, before.node_cpu_seconds, last.node_cpu_seconds)?,
            memory_bytes: last.node_working_set,
        })
    }

    /// Each container of the pod with its usage, when every one was in both scrapes.
    pub(crate) fn pod(
        &self,
        node: &str,
        namespace: &str,
        pod: &str,
    ) -> Option<Vec<(String, Usage)>> {
        let scrapes = self.lock();
        let (before, last) = scrapes.get(node)?;
        let mut containers: Vec<(String, Usage)> = last
            .containers
            .iter()
            .filter(|((ns, p, _), _)| ns == namespace && p == pod)
            .map(|(key, (cpu, memory))| {
                let (cpu_before, _) = before.containers.get(key)?;
                let usage = Usage {
                    cpu_nanocores: rate(before, last, *cpu_before, *cpu)?,
                    memory_bytes: *memory,
                };
                Some((key.2.clone(), usage))
            })
            .collect::<Option<_>>()?;
        containers.sort_by(|a, b| a.0.cmp(&b.0));
        (!containers.is_empty()).then_some(containers)
    }

    fn record(&self, node: &str, sample: Sample) {
        let mut scrapes = self.lock();
        let pair = scrapes.entry(node.to_string()).or_default();
        pair.0 = std::mem::replace(&mut pair.1, sample);
    }

    fn forget_all_but(&self, nodes: &[String]) {
        self.lock().retain(|node, _| nodes.contains(node));
    }
}

/// The CPU rate between two scrapes in nanocores; None without a time between them.
fn rate(before: &Sample, last: &Sample, from: f64, to: f64) -> Option<u64> {
    let seconds = last.at_ms.checked_sub(before.at_ms).filter(|ms| *ms > 0)? as f64 / 1000.0;
    Some(((to - from).max(0.0) / seconds * 1e9) as u64)
}

/// Scrapes every real node's agent each [`INTERVAL`], until the process ends.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(INTERVAL);
    loop {
        ticks.tick().await;
        let (entries, _) = shared.cache.list("/registry/nodes/");
        let nodes: Vec<Value> = entries
            .iter()
            .map(|e| e.object())
            .filter(|n| n["status"]["nodeInfo"]["containerRuntimeVersion"] != SIMULATED_RUNTIME)
            .collect();
        let names: Vec<String> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
            .collect();
        shared.scrapes.forget_all_but(&names);
        let scrapes = nodes.iter().map(|node| scrape(&shared, node));
        futures_util::future::join_all(scrapes).await;
    }
}

/// Scrapes one node's agent, recording what it answers.
async fn scrape(shared: &Shared, node: &Value) {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let Some(agent) = crate::kubelets::agent_url(node) else {
        return;
    };
    let url = format!("{agent}/metrics/resource");
    match tokio::time::timeout(INTERVAL, shared.kubelets.get(&url)).await {
        Ok(Ok(text)) => shared.scrapes.record(name, parse(&text)),
        Ok(Err(error)) => tracing::debug!(node = name, %error, "scraping the agent failed"),
        Err(_) => tracing::debug!(node = name, "scraping the agent timed out"),
    }
}

/// A scrape's Prometheus text.
fn parse(text: &str) -> Sample {
    let mut sample = Sample::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, rest) = match line.split_once('{') {
            Some((name, rest)) => (name, rest),
            None => (line.split_whitespace().next().unwrap_or_default(), ""),
        };
        let (labels, values) = rest.split_once('}').unwrap_or(("", line));
        let mut values = values.split_whitespace().skip(usize::from(rest.is_empty()));
        let value: f64 = values.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        if let Some(at) = values.next().and_then(|v| v.parse().ok()) {
            sample.at_ms = sample.at_ms.max(at);
        }
        let label = |key: &str| {
            labels.split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let key = || Some((label("namespace")?, label("pod")?, label("container")?));
        match series {
            "container_cpu_usage_seconds_total" => {
                if let Some(key) = key() {
                    sample.containers.entry(key).or_default().0 = value;
                }
            }
            "container_memory_working_set_bytes" => {
                if let Some(key) = key() {
                    sample.containers.entry(key).or_default().1 = value as u64;
                }
            }
            "node_cpu_usage_seconds_total" => sample.node_cpu_seconds = value,
            "node_memory_working_set_bytes" => sample.node_working_set = value as u64,
            _ => {}
        }
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(at_ms: u64, cpu: f64) -> String {
        format!(
            "# TYPE container_cpu_usage_seconds_total counter\n\
             container_cpu_usage_seconds_total{{container=\"app\",namespace=\"default\",pod=\"web\"}} {cpu} {at_ms}\n\
             container_memory_working_set_bytes{{container=\"app\",namespace=\"default\",pod=\"web\"}} 2048 {at_ms}\n\
             node_cpu_usage_seconds_total {} {at_ms}\n\
             node_memory_working_set_bytes 4096 {at_ms}\n",
            cpu * 4.0
        )
    }

    #[test]
    fn two_scrapes_give_cpu_rates_and_the_last_working_sets() {
        let scrapes = Scrapes::default();
        scrapes.record("n1", parse(&scrape(10_000, 1.0)));
        assert_eq!(
            scrapes.pod("n1", "default", "web"),
            None,
            "one scrape gives no rate"
        );
        scrapes.record("n1", parse(&scrape(20_000, 3.5)));
        let usage = Usage {
            cpu_nanocores: 250_000_000,
            memory_bytes: 2048,
        };
        assert_eq!(
            scrapes.pod("n1", "default", "web"),
            Some(vec![("app".to_string(), usage)])
        );
        let node = scrapes.node("n1").unwrap();
        assert_eq!(
            (node.cpu_nanocores, node.memory_bytes),
            (1_000_000_000, 4096)
        );
        assert!(scrapes.covers("n1") && !scrapes.covers("n2"));
        assert_eq!(scrapes.pod("n1", "default", "other"), None);
    }
}
