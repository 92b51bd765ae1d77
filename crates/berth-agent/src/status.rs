//! A pod's status as the kubelet reports it, read from the engine's records of the
//! pod's containers: each container's state and last state (with the kubelet's reasons
//! and exit codes), restart count, image and ids; the pod's phase, its five conditions,
//! its addresses and QoS class.

use std::collections::HashMap;

use berth_engine::{Container, PodSandbox, Status};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::kubelet::{ATTEMPT, CONTAINER_NAME, POD_UID};
use crate::node::NodeIdentity;
use crate::probes::ProbeState;

/// The exit code the kubelet reports for a container whose process never started.
const START_ERROR_CODE: i32 = 128;

/// Why a container waits, when the engine has no record that says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The kubelet's reason: ErrImagePull, CrashLoopBackOff…
    pub reason: String,
    /// The cause, in the words of whoever refused.
    pub message: String,
}

impl Waiting {
    /// A waiting reason and its message.
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// What the kubelet's `Failed` event says after `Error: `: the reason of a failed
    /// pull (whose cause is an event of its own), the cause of anything else.
    pub fn reason_or_message(&self) -> &str {
        if self.reason == "ErrImagePull" {
            &self.reason
        } else {
            &self.message
        }
    }
}

/// The engine's runs of the container `name` of the pod `uid`, oldest first.
pub fn records(all: &[Container], uid: &str, name: &str) -> Vec<Container> {
    let mut runs: Vec<Container> = all
        .iter()
        .filter(|c| {
            let labels = c.request.labels.as_ref();
            labels.and_then(|l| l.get(POD_UID)).map(String::as_str) == Some(uid)
                && labels
                    .and_then(|l| l.get(CONTAINER_NAME))
                    .map(String::as_str)
                    == Some(name)
        })
        .cloned()
        .collect();
    runs.sort_by_key(attempt);
    runs
}

/// Which run of its container a record is: 0 for the first.
pub fn attempt(container: &Container) -> u32 {
    container
        .request
        .labels
        .as_ref()
        .and_then(|l| l.get(ATTEMPT))
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

/// How a run ended: its exit code, 128 when its process could not start; None while it
/// runs or has not started yet.
pub fn exit_code(container: &Container) -> Option<i32> {
    match container.state.status {
        Status::Exited => Some(container.state.exit_code),
        Status::Created if !container.state.error.is_empty() => Some(START_ERROR_CODE),
        _ => None,
    }
}

/// Whether a container that exited with `code` is restarted under `policy`.
pub fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

fn time(rfc3339: &str) -> Option<Time> {
    rfc3339.parse().ok().map(Time)
}

/// A run's end as the kubelet words it.
fn terminated(run: &Container, code: i32) -> ContainerStateTerminated {
    let started = !run.state.error.is_empty() || run.state.status == Status::Exited;
    let reason = if run.state.oom_killed {
        "OOMKilled"
    } else if !run.state.error.is_empty() {
        "StartError"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: code,
        reason: Some(reason.into()),
        message: (!run.state.error.is_empty()).then(|| run.state.error.clone()),
        started_at: started.then(|| time(&run.state.started_at)).flatten(),
        finished_at: time(&run.state.finished_at),
        container_id: Some(container_id(run)),
        ..ContainerStateTerminated::default()
    }
}

fn container_id(run: &Container) -> String {
    format!("berth://{}", run.id)
}

/// One container's status, from its runs and why it waits (if it does).
fn container_status(
    spec: &k8s_openapi::api::core::v1::Container,
    runs: &[Container],
    (waiting, probed): (Option<&Waiting>, Option<&ProbeState>),
    policy: &str,
) -> ContainerStatus {
    let latest = runs.last();
    let previous = runs.len().checked_sub(2).and_then(|i| runs.get(i));
    let running = latest.filter(|r| r.state.status == Status::Running);
    let ended = latest.and_then(|r| exit_code(r).map(|code| (r, code)));
    let mut last_state = previous.and_then(|p| exit_code(p).map(|code| terminated(p, code)));
    let state = if let Some(run) = running {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(&run.state.started_at),
            }),
            ..ContainerState::default()
        }
    } else if let Some(waiting) = waiting {
        // A run that ended and waits for its restart shows as the last state.
        if let Some((run, code)) = ended {
            last_state = Some(terminated(run, code));
        }
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(waiting.reason.clone()),
                message: Some(waiting.message.clone()).filter(|m| !m.is_empty()),
            }),
            ..ContainerState::default()
        }
    } else if let Some((run, code)) = ended {
        if restarts(policy, code) {
            last_state = Some(terminated(run, code));
            waiting_state("ContainerCreating")
        } else {
            ContainerState {
                terminated: Some(terminated(run, code)),
                ..ContainerState::default()
            }
        }
    } else {
        waiting_state("ContainerCreating")
    };
    ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.clone().unwrap_or_default(),
        image_id: latest.map(|r| r.image_id.clone()).unwrap_or_default(),
        container_id: latest
            .filter(|_| running.is_some() || ended.is_some())
            .map(container_id),
        ready: running.is_some() && probed.is_none_or(|p| p.started && p.ready),
        started: Some(running.is_some() && probed.is_none_or(|p| p.started)),
        restart_count: latest.map_or(0, |r| attempt(r) as i32),
        state: Some(state),
        last_state: last_state.map(|t| ContainerState {
            terminated: Some(t),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn waiting_state(reason: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: None,
        }),
        ..ContainerState::default()
    }
}

/// Whether a container is done for good: it ended and its policy does not restart it.
fn finished(status: &ContainerStatus) -> Option<i32> {
    status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// The pod's status, as the kubelet reports it.
pub fn pod_status(
    pod: &Pod,
    sandbox: &PodSandbox,
    node: &NodeIdentity,
    (records, probes): (&[Container], &HashMap<String, ProbeState>),
    waiting: &HashMap<String, Waiting>,
) -> PodStatus {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_policy = if policy == "Always" {
        "OnFailure"
    } else {
        policy
    };
    let statuses = |containers: &[k8s_openapi::api::core::v1::Container], policy: &str| {
        containers
            .iter()
            .map(|c| {
                let runs = self::records(records, &uid, &c.name);
                let probed = runs.last().and_then(|r| probes.get(&r.id));
                container_status(c, &runs, (waiting.get(&c.name), probed), policy)
            })
            .collect::<Vec<_>>()
    };
    let init = statuses(
        spec.init_containers.as_deref().unwrap_or_default(),
        init_policy,
    );
    let main = statuses(&spec.containers, policy);
    let init_failed = init.iter().any(|s| finished(s).is_some_and(|c| c != 0));
    let initialized = init.iter().all(|s| finished(s) == Some(0));
    let all_finished = main.iter().all(|s| finished(s).is_some());
    let phase = if init_failed {
        "Failed"
    } else if !initialized {
        "Pending"
    } else if all_finished {
        if main.iter().all(|s| finished(s) == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if main
        .iter()
        .any(|s| s.ready || s.restart_count > 0 || s.last_state.is_some() || finished(s).is_some())
    {
        "Running"
    } else {
        "Pending"
    };
    let ready = phase == "Running" && main.iter().all(|s| s.ready);
    let host_ip = node.ip.to_string();
    let pod_ip = sandbox
        .ip()
        .map_or_else(|| host_ip.clone(), |ip| ip.to_string());
    let old = pod.status.clone().unwrap_or_default();
    let conditions = conditions(&old, phase, initialized, ready);
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        start_time: old.start_time.or_else(|| time(&sandbox.created)),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(main),
        qos_class: Some(qos_class(&spec).into()),
        ..PodStatus::default()
    }
}

/// The five conditions; each keeps its transition time while its status stays.
fn conditions(old: &PodStatus, phase: &str, initialized: bool, ready: bool) -> Vec<PodCondition> {
    let finished = matches!(phase, "Succeeded" | "Failed");
    let wanted = [
        ("PodReadyToStartContainers", !finished, None),
        ("Initialized", initialized, None),
        (
            "ContainersReady",
            ready,
            (!ready).then_some("ContainersNotReady"),
        ),
        ("Ready", ready, (!ready).then_some("ContainersNotReady")),
        ("PodScheduled", true, None),
    ];
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    wanted
        .into_iter()
        .map(|(kind, status, reason)| {
            let status = if status { "True" } else { "False" };
            let reason = if finished && kind != "PodScheduled" && kind != "Initialized" {
                Some("PodCompleted")
            } else {
                reason
            };
            let previous = old
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == kind && c.status == status);
            PodCondition {
                type_: kind.into(),
                status: status.into(),
                reason: reason.map(String::from),
                last_transition_time: Some(
                    previous
                        .and_then(|p| p.last_transition_time.clone())
                        .unwrap_or_else(|| now.clone()),
                ),
                ..PodCondition::default()
            }
        })
        .collect()
}

/// Guaranteed when every container limits CPU and memory to what it requests,
/// BestEffort when none asks for either, Burstable otherwise.
pub(crate) fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> &'static str {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for container in containers {
        let resources = container.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        any |= !requests.is_empty() || !limits.is_empty();
        for resource in ["cpu", "memory"] {
            let limit = limits.get(resource);
            let request = requests.get(resource).or(limit);
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
