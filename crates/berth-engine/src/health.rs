//! HEALTHCHECK: a probe command run in the container every interval (through the same
//! `berth oci exec` helper as `docker exec`), its result kept in the container's state as
//! Docker keeps it: `starting` until the first verdict, `healthy`, or `unhealthy` after
//! `retries` failures in a row (failures within the start period do not count).

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exec::ExecRequest;
use crate::model::{Container, Status};
use crate::{Engine, Result};

/// The health check of a container (`HEALTHCHECK`, `--health-*`); durations in ns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Between probes; 30 s when 0.
    #[serde(deserialize_with = "zero_if_null")]
    pub interval: u64,
    /// For one probe; 30 s when 0.
    #[serde(deserialize_with = "zero_if_null")]
    pub timeout: u64,
    /// Failures in a row before unhealthy; 3 when 0.
    #[serde(deserialize_with = "zero_if_null")]
    pub retries: u64,
    /// Grace after start during which failures do not count.
    #[serde(deserialize_with = "zero_if_null")]
    pub start_period: u64,
}

/// A duration or count a client sent as `null` (docker-compose 1.29 does for those its
/// file leaves out) is Docker's zero: the default.
fn zero_if_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<u64, D::Error> {
    Option::<u64>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// One probe's result, as inspect shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    /// When it began.
    pub start: String,
    /// When it ended.
    pub end: String,
    /// Its exit status (-1 when it timed out).
    pub exit_code: i32,
    /// The first 4 KiB of its output.
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failures in a row.
    pub failing_streak: u64,
    /// The last five probes.
    pub log: Vec<ProbeResult>,
}

impl HealthConfig {
    /// The container's check: the request's over the image's; None when there is none.
    pub(crate) fn of(container: &Container, image_config: &Value) -> Option<Self> {
        let from_image = serde_json::from_value::<Self>(image_config["Healthcheck"].clone()).ok();
        let config = container
            .request
            .healthcheck
            .clone()
            .filter(|h| !h.test.is_empty())
            .or(from_image)?;
        match config.test.first().map(String::as_str) {
            Some("CMD" | "CMD-SHELL") => Some(config),
            _ => None,
        }
    }

    fn command(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")],
            _ => self.test[1..].to_vec(),
        }
    }
}

fn or_default(ns: u64, default: Duration) -> Duration {
    if ns == 0 {
        default
    } else {
        Duration::from_nanos(ns)
    }
}

impl Engine {
    /// Probes a just-started container until that run ends.
    pub(crate) fn watch_health(self: &Arc<Self>, container: &Container, config: HealthConfig) {
        let engine = Arc::clone(self);
        let id = container.id.clone();
        let run = container.state.exits;
        std::thread::spawn(move || {
            let interval = or_default(config.interval, Duration::from_secs(30));
            let timeout = or_default(config.timeout, Duration::from_secs(30));
            let retries = if config.retries == 0 {
                3
            } else {
                config.retries
            };
            let grace_until = Instant::now() + Duration::from_nanos(config.start_period);
            engine.update(&id, |state| {
                state.health = Some(Health {
                    status: "starting".into(),
                    ..Health::default()
                })
            });
            loop {
                std::thread::sleep(interval);
                let current = engine.container(&id);
                if !current.is_ok_and(|c| c.state.status == Status::Running && c.state.exits == run)
                {
                    return;
                }
                let result = engine.probe(&id, config.command(), timeout, "health");
                let counts = Instant::now() >= grace_until;
                let changed = engine.update(&id, |state| {
                    let health = state.health.get_or_insert_with(Health::default);
                    let before = health.status.clone();
                    if result.exit_code == 0 {
                        health.status = "healthy".into();
                        health.failing_streak = 0;
                    } else if counts {
                        health.failing_streak += 1;
                        if health.failing_streak >= retries {
                            health.status = "unhealthy".into();
                        }
                    }
                    health.log.push(result);
                    let excess = health.log.len().saturating_sub(5);
                    health.log.drain(..excess);
                    (health.status != before).then(|| health.status.clone())
                });
                if let (Some(Some(status)), Ok(container)) = (changed, engine.container(&id)) {
                    engine.emit_container(&container, &format!("health_status: {status}"), &[]);
                }
            }
        });
    }

    /// Runs one probe command in the container, killed after `timeout`: its exit code
    /// (-1 when it timed out or could not run) and the start of its output. `kind` names
    /// the probe (`health`, `liveness`…): probes of different kinds may run at once.
    pub fn probe(&self, id: &str, cmd: Vec<String>, timeout: Duration, kind: &str) -> ProbeResult {
        let start = crate::now_rfc3339();
        let outcome = self.run_probe(id, cmd, timeout, kind);
        let (exit_code, output) = outcome.unwrap_or_else(|e| (-1, e.to_string()));
        ProbeResult {
            start,
            end: crate::now_rfc3339(),
            exit_code,
            output,
        }
    }

    fn run_probe(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
        kind: &str,
    ) -> Result<(i32, String)> {
        let request = ExecRequest {
            cmd,
            ..ExecRequest::default()
        };
        let stdio = [Stdio::null(), Stdio::piped(), Stdio::null()];
        let file = format!("{kind}-probe.json");
        let mut child = self.spawn_exec_helper((id, &file), &request, stdio, None)?;
        let deadline = Instant::now() + timeout;
        let code = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.code().unwrap_or(-1),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok((-1, format!("Health check exceeded timeout ({timeout:?})")));
                }
            }
        };
        let mut output = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = stdout.take(4096).read_to_string(&mut output);
        }
        Ok((code, output))
    }
}
