//! The Job controller: runs a Job's pods to completion, as kube-controller-manager's —
//! up to `parallelism` at once until `completions` of them have succeeded. Failed pods
//! are replaced after an exponential back-off (10 s, doubling, at most 6 min) until
//! more than `backoffLimit` have failed (for restartPolicy OnFailure: until the
//! containers restarted that often); then, or once `activeDeadlineSeconds` have passed,
//! the Job fails and its running pods are deleted. A suspended Job keeps no pods.
//!
//! Its status is what `kubectl get jobs` and `kubectl wait --for=condition=complete`
//! read: the counts of active, ready, succeeded and failed pods, the start and
//! completion times, and the conditions of Kubernetes 1.31 — SuccessCriteriaMet then
//! Complete, FailureTarget then Failed (each second one once no pod runs any more).
//! Finished Jobs are left alone. Counts come from the pods there are (no tracking
//! finalizers): a finished pod deleted by hand before its Job is done is run again.

use std::time::Duration;

use berth_runner::{Action, Cache, Controller, Informers};
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::cached_pod::CachedPod;
use crate::expectations::{Expectations, InFlight};
use crate::pods::{Naming, active, ready};

/// The name events give the controller.
const COMPONENT: &str = "job-controller";

/// The first retry's delay after a failure, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(360));

/// Runs the controller until the client's watches end: called for each Job, and for a
/// Job when one of its pods changes.
pub async fn run(client: Client, informers: Informers) {
    let pods = informers.cache::<CachedPod>().await;
    let controller = Controller::<Job>::new(&informers)
        .await
        .owns::<CachedPod>()
        .await;
    let expectations = Expectations::default();
    controller
        .run(|job| {
            let (client, pods, expectations) = (&client, &pods, &expectations);
            expectations.with(job.uid(), async move |flight| {
                if finished(&job) || job.metadata.deletion_timestamp.is_some() {
                    return Ok(Action::AwaitChange);
                }
                reconcile(client, &job, pods, flight).await
            })
        })
        .await;
}

/// Whether the condition of `kind` is True on the job.
fn holds(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// Whether the Job is done for good: Complete or Failed.
pub(crate) fn finished(job: &Job) -> bool {
    holds(job, "Complete") || holds(job, "Failed")
}

/// The Job's pods, counted as its status counts them.
#[derive(Default)]
struct Tally {
    active: Vec<std::sync::Arc<CachedPod>>,
    succeeded: i32,
    failed: i32,
    terminating: i32,
    /// Container restarts in active pods: OnFailure's failures.
    restarts: i32,
    /// When the last failure happened.
    last_failure: Option<Timestamp>,
}

fn tally(owned: Vec<std::sync::Arc<CachedPod>>, flight: &InFlight) -> Tally {
    let mut tally = Tally::default();
    for pod in owned {
        match crate::pods::phase(&pod) {
            "Succeeded" => tally.succeeded += 1,
            "Failed" => {
                tally.failed += 1;
                tally.last_failure = tally.last_failure.max(finish_time(&pod));
            }
            _ if !active(&pod) || flight.deleting(&pod.name_any()) => tally.terminating += 1,
            _ => {
                tally.restarts += restarts(&pod);
                tally.active.push(pod);
            }
        }
    }
    tally
}

/// The sum of the pod's containers' restart counts.
fn restarts(pod: &CachedPod) -> i32 {
    let status = pod.status.as_ref();
    let all = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.init_container_statuses.as_ref()));
    all.flatten().map(|c| c.restart_count).sum()
}

/// When the pod's last container finished; its creation when none says.
fn finish_time(pod: &CachedPod) -> Option<Timestamp> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let finished = statuses
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    finished.or(pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How long after the `failures`th failure a new pod may start: 10 s, doubling, at most
/// 6 min; none before any failure.
fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16) as u32;
    BACKOFF.0.saturating_mul(1 << doublings).min(BACKOFF.1)
}

/// Why the Job fails now, if it does: a condition reason and message.
fn failure(job: &Job, tally: &Tally, now: Timestamp) -> Option<(&'static str, &'static str)> {
    let spec = job.spec.clone().unwrap_or_default();
    let limit = spec.backoff_limit.unwrap_or(6);
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    // As the Job controller: more failed pods than the limit, or under OnFailure as
    // many container restarts (any, for a limit of 0).
    let exceeded =
        tally.failed > limit || (on_failure && tally.restarts > 0 && tally.restarts >= limit);
    if exceeded {
        return Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    }
    let started = job.status.as_ref().and_then(|s| s.start_time.as_ref())?.0;
    let deadline = spec.active_deadline_seconds?;
    (now.duration_since(started) >= SignedDuration::from_secs(deadline)).then_some((
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    ))
}

/// What a pass decided the Job is now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// Runs (or waits to run) pods.
    Running,
    /// Suspended: keeps no pods.
    Suspended,
    /// Enough pods succeeded.
    Succeeded,
    /// Failed for this reason, with this message.
    Failed(&'static str, &'static str),
}

async fn reconcile(
    client: &Client,
    job: &Job,
    pods: &Cache<CachedPod>,
    flight: &mut InFlight,
) -> Result<Action, kube::Error> {
    let owned = pods.controlled_by(job);
    flight.observe(&owned.iter().map(|p| p.name_any()).collect());
    let mut tally = tally(owned, flight);
    let spec = job.spec.clone().unwrap_or_default();
    let completions = spec.completions.unwrap_or(1);
    let now = Timestamp::now();
    let verdict = if let Some((reason, message)) = failure(job, &tally, now) {
        Verdict::Failed(reason, message)
    } else if tally.succeeded >= completions {
        Verdict::Succeeded
    } else if spec.suspend.unwrap_or(false) {
        Verdict::Suspended
    } else {
        Verdict::Running
    };
    let wanted = match verdict {
        Verdict::Running => spec
            .parallelism
            .unwrap_or(1)
            .min(completions - tally.succeeded),
        _ => 0,
    }
    .max(0) as usize;
    let have = tally.active.len() + flight.creating();
    let waited = tally.last_failure.map_or(Duration::MAX, |t| {
        Duration::try_from(now.duration_since(t)).unwrap_or_default()
    });
    let held_back = backoff(tally.failed).saturating_sub(waited);
    if have < wanted && held_back.is_zero() {
        for _ in have..wanted {
            let pod =
                crate::pods::from_template(job, &spec.template, Naming::Generated(job.name_any()))?;
            let created = crate::pods::create(client, &pod).await?;
            let message = format!("Created pod: {}", created.name_any());
            berth_events::record(
                client,
                job,
                ("Normal", "SuccessfulCreate", &message),
                COMPONENT,
            )
            .await;
            flight.created(created.name_any());
        }
    } else if tally.active.len() > wanted && flight.creating() == 0 {
        // The least useful go first: not ready, then the newest.
        tally.active.sort_by_key(|p| {
            (
                ready(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        let excess = tally.active.len() - wanted;
        for pod in tally.active.drain(..excess) {
            if crate::pods::delete(client, &pod).await? {
                let message = format!("Deleted pod: {}", pod.name_any());
                berth_events::record(
                    client,
                    job,
                    ("Normal", "SuccessfulDelete", &message),
                    COMPONENT,
                )
                .await;
                flight.deleted(pod.name_any());
                tally.terminating += 1;
            }
        }
    }
    report(client, job, &tally, verdict).await?;
    let waiting = (have < wanted).then_some(held_back);
    Ok(next_look(job, verdict, waiting, now))
}

/// When the Job needs a look though nothing changes: when a held-back pod may start,
/// or when its active deadline passes.
fn next_look(job: &Job, verdict: Verdict, held_back: Option<Duration>, now: Timestamp) -> Action {
    if verdict != Verdict::Running {
        return Action::AwaitChange;
    }
    let started = job.status.as_ref().and_then(|s| s.start_time.as_ref());
    let deadline = job.spec.as_ref().and_then(|s| s.active_deadline_seconds);
    let to_deadline = started.zip(deadline).map(|(started, deadline)| {
        let end = started.0 + SignedDuration::from_secs(deadline);
        Duration::try_from(end.duration_since(now)).unwrap_or_default()
    });
    // A Job just started has no start time in this view: the next call, after the
    // status write, sees it.
    match held_back.into_iter().chain(to_deadline).min() {
        Some(after) => Action::RequeueAfter(after.max(Duration::from_millis(100))),
        None => Action::AwaitChange,
    }
}

/// The conditions the Job has after this pass: those it had, with the verdict's added
/// (the terminal one only once no pod runs any more).
fn conditions(job: &Job, tally: &Tally, verdict: Verdict) -> Vec<JobCondition> {
    let mut conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let settled = tally.active.is_empty() && tally.terminating == 0;
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let mut set = |kind: &str, status: &str, (reason, message): (&str, &str)| {
        let existing = conditions.iter().position(|c| c.type_ == kind);
        match existing {
            Some(i) if conditions[i].status == status => return,
            None if status == "False" => return,
            _ => {}
        }
        let condition = JobCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        };
        match existing {
            Some(i) => conditions[i] = condition,
            None => conditions.push(condition),
        }
    };
    match verdict {
        Verdict::Running => set("Suspended", "False", ("JobResumed", "Job resumed")),
        Verdict::Suspended => set("Suspended", "True", ("JobSuspended", "Job suspended")),
        Verdict::Succeeded => {
            let why = (
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            set("SuccessCriteriaMet", "True", why);
            if settled {
                set("Complete", "True", why);
            }
        }
        Verdict::Failed(reason, message) => {
            set("FailureTarget", "True", (reason, message));
            if settled {
                set("Failed", "True", (reason, message));
            }
        }
    }
    conditions
}

/// The Job's status from its pods, written (with an event for the end) when it changed.
async fn report(
    client: &Client,
    job: &Job,
    tally: &Tally,
    verdict: Verdict,
) -> Result<(), kube::Error> {
    let previous = job.status.clone().unwrap_or_default();
    let conditions = conditions(job, tally, verdict);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let start_time = match verdict {
        Verdict::Suspended => previous.start_time.clone(),
        _ => previous.start_time.clone().or(Some(now.clone())),
    };
    let complete = conditions.iter().any(|c| c.type_ == "Complete");
    let completion_time = previous.completion_time.clone().or(complete.then_some(now));
    let ready_count = tally.active.iter().filter(|p| ready(p)).count() as i32;
    let status = json!({
        "active": tally.active.len(),
        "ready": ready_count,
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "terminating": tally.terminating,
        "startTime": start_time,
        "completionTime": completion_time,
        "conditions": conditions,
        "uncountedTerminatedPods": {},
    });
    let unchanged = previous.active.unwrap_or(0) == tally.active.len() as i32
        && previous.ready.unwrap_or(0) == ready_count
        && previous.succeeded.unwrap_or(0) == tally.succeeded
        && previous.failed.unwrap_or(0) == tally.failed
        && previous.terminating.unwrap_or(0) == tally.terminating
        && previous.start_time == start_time
        && previous.conditions.clone().unwrap_or_default() == conditions;
    if unchanged {
        return Ok(());
    }
    let api: Api<Job> = Api::namespaced(client.clone(), &job.namespace().unwrap_or_default());
    // Written against the Job as this pass saw it: when the cache still shows the Job
    // before this controller's last write, the write is refused (a conflict) rather
    // than made again — with its event announced twice.
    let patch = json!({
        "metadata": {"resourceVersion": job.resource_version()},
        "status": status,
    });
    api.patch_status(
        &job.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    announce(client, job, &conditions).await;
    Ok(())
}

/// The events of a Job that just finished: Completed, or the reason it failed.
async fn announce(client: &Client, job: &Job, conditions: &[JobCondition]) {
    let had = |kind: &str| holds(job, kind);
    for condition in conditions.iter().filter(|c| c.status == "True") {
        let event = match condition.type_.as_str() {
            "Complete" if !had("Complete") => ("Normal", "Completed", "Job completed"),
            "FailureTarget" if !had("FailureTarget") => (
                "Warning",
                condition.reason.as_deref().unwrap_or("Failed"),
                condition.message.as_deref().unwrap_or_default(),
            ),
            _ => continue,
        };
        berth_events::record(client, job, event, COMPONENT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str, restarts: i32) -> std::sync::Arc<CachedPod> {
        let pod = json!({"metadata": {"name": format!("p-{phase}-{restarts}")},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": false,
                "restartCount": restarts}]}});
        std::sync::Arc::new(serde_json::from_value(pod).unwrap())
    }

    fn job(limit: i32, policy: &str) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {
            "backoffLimit": limit,
            "template": {"spec": {"restartPolicy": policy, "containers": [{"name": "c"}]}}}}))
        .unwrap()
    }

    #[test]
    fn failures_count_against_the_backoff_limit() {
        let flight = InFlight::default();
        let pods = vec![pod("Failed", 0), pod("Failed", 0), pod("Running", 0)];
        let counted = tally(pods, &flight);
        assert_eq!((counted.failed, counted.active.len()), (2, 1));
        let now = Timestamp::now();
        assert_eq!(failure(&job(2, "Never"), &counted, now), None);
        assert_eq!(
            failure(&job(1, "Never"), &counted, now).map(|f| f.0),
            Some("BackoffLimitExceeded")
        );
        // Under OnFailure, container restarts are the failures.
        let restarting = tally(vec![pod("Running", 3)], &flight);
        assert_eq!(failure(&job(4, "OnFailure"), &restarting, now), None);
        assert!(failure(&job(3, "OnFailure"), &restarting, now).is_some());
        assert!(failure(&job(0, "OnFailure"), &restarting, now).is_some());
    }

    #[test]
    fn retries_back_off_exponentially_up_to_six_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(100), Duration::from_secs(360));
    }

    #[test]
    fn the_terminal_condition_waits_for_the_pods() {
        let job = job(0, "Never");
        let mut counted = Tally::default();
        counted.active.push(pod("Running", 0));
        let failing = Verdict::Failed("BackoffLimitExceeded", "m");
        let kinds = |c: Vec<JobCondition>| c.into_iter().map(|c| c.type_).collect::<Vec<_>>();
        assert_eq!(
            kinds(conditions(&job, &counted, failing)),
            ["FailureTarget"]
        );
        counted.active.clear();
        assert_eq!(
            kinds(conditions(&job, &counted, failing)),
            ["FailureTarget", "Failed"]
        );
    }
}
