//! The CronJob controller: makes each CronJob's Job at the times its schedule names, as
//! kube-controller-manager's — a standard 5-field cron schedule (or `@hourly`,
//! `@daily`, ...), read in `spec.timeZone` (the controller's own zone when none).
//!
//! A Job is named `<cronjob>-<scheduled time in minutes since the epoch>`, so a time is
//! never run twice, and carries the `batch.kubernetes.io/cronjob-scheduled-timestamp`
//! annotation and the CronJob as its controller. Only the most recent missed time is
//! run, and only within `startingDeadlineSeconds` of it; none while `suspend` is set.
//! `concurrencyPolicy` says what happens while an earlier Job still runs: Allow starts
//! the new one beside it, Forbid skips the time, Replace deletes the running one first.
//! Finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are
//! deleted, oldest first. The status — active Jobs, lastScheduleTime,
//! lastSuccessfulTime — is what `kubectl get cronjobs` prints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_runner::{Action, Cache, Controller, Informers};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::jobs::finished;
use crate::lock;

/// The longest the controller sleeps when no change and no schedule wakes it sooner.
const RETRY: Duration = Duration::from_secs(10);

/// The name events give the controller.
const COMPONENT: &str = "cronjob-controller";

/// The annotation that tells a Job which scheduled time it runs for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Why a CronJob cannot be scheduled: an event reason and message.
type Unschedulable = (&'static str, String);

/// Runs the controller until the client's watches end: called for each CronJob at its
/// next scheduled time, when it changes, and when one of its Jobs does.
pub async fn run(client: Client, informers: Informers) {
    let jobs = informers.cache::<Job>().await;
    let controller = Controller::<CronJob>::new(&informers)
        .await
        .owns::<Job>()
        .await;
    // The problem each broken CronJob was last told of, so it is told once.
    let warned: Mutex<HashMap<String, String>> = Mutex::default();
    controller
        .run(|cronjob| {
            let (client, jobs, warned) = (&client, &jobs, &warned);
            async move {
                if cronjob.metadata.deletion_timestamp.is_some() {
                    return Ok(Action::AwaitChange);
                }
                let uid = cronjob.uid().unwrap_or_default();
                match reconcile(client, &cronjob, jobs).await? {
                    Ok(next) => {
                        lock(warned).remove(&uid);
                        Ok(Action::RequeueAfter(next))
                    }
                    Err((reason, message)) => {
                        let told = lock(warned).insert(uid, message.clone());
                        if told.as_ref() != Some(&message) {
                            let event = ("Warning", reason, message.as_str());
                            berth_events::record(client, cronjob.as_ref(), event, COMPONENT).await;
                        }
                        Ok(Action::AwaitChange)
                    }
                }
            }
        })
        .await;
}

/// The schedule of a CronJob, read as Kubernetes reads it: five fields (minute, hour,
/// day of month, month, day of week) or a shorthand such as `@hourly`.
pub fn parse_schedule(schedule: &str) -> Result<Cron, String> {
    let schedule = schedule.trim();
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    // robfig/cron's shorthand that croner lacks.
    let schedule = if schedule.eq_ignore_ascii_case("@midnight") {
        "@daily"
    } else {
        schedule
    };
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| e.to_string())
}

/// The zone a CronJob's schedule is read in.
fn time_zone(cronjob: &CronJob) -> Result<TimeZone, Unschedulable> {
    match cronjob.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        None => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|e| {
            (
                "UnknownTimeZone",
                format!("invalid timeZone: {name:?}: {e}"),
            )
        }),
    }
}

/// The most recent scheduled time after `after` and at most `now`, if there is one.
fn due(schedule: &Cron, after: Timestamp, now: &Zoned) -> Option<Zoned> {
    let last = schedule.find_previous_occurrence(now, true).ok()?;
    (last.timestamp() > after).then_some(last)
}

/// One pass over a CronJob: its finished Jobs pruned, its due Job made, its status
/// written. How long until its next scheduled time, or why it cannot be scheduled.
async fn reconcile(
    client: &Client,
    cronjob: &CronJob,
    jobs: &Cache<Job>,
) -> Result<Result<Duration, Unschedulable>, kube::Error> {
    let spec = cronjob.spec.clone().unwrap_or_default();
    let schedule = match parse_schedule(&spec.schedule) {
        Ok(schedule) => schedule,
        Err(e) => {
            let message = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            return Ok(Err(("UnparseableSchedule", message)));
        }
    };
    let zone = match time_zone(cronjob) {
        Ok(zone) => zone,
        Err(problem) => return Ok(Err(problem)),
    };
    let now = Timestamp::now().to_zoned(zone);
    let mut owned = jobs.controlled_by(cronjob);
    owned.sort_by_key(|j| j.metadata.creation_timestamp.clone());
    prune_history(client, cronjob, &owned).await?;
    let mut active: Vec<Arc<Job>> = owned.iter().filter(|j| !finished(j)).cloned().collect();
    let status = cronjob.status.clone().unwrap_or_default();
    let mut last_scheduled = status.last_schedule_time.clone().map(|t| t.0);
    let earliest = start_of_window(cronjob, now.timestamp());
    if let Some(time) = due(&schedule, earliest, &now)
        && !spec.suspend.unwrap_or(false)
        && let Some(job) = start(client, cronjob, &time, &mut active).await?
    {
        last_scheduled = Some(time.timestamp());
        active.push(Arc::new(job));
    }
    report(client, cronjob, (&owned, &active), last_scheduled).await?;
    let next = schedule
        .find_next_occurrence(&now, false)
        .ok()
        .and_then(|next| Duration::try_from(now.duration_until(&next)).ok());
    Ok(Ok(next.unwrap_or(RETRY)))
}

/// The start of the window of times still to run: after the last scheduled time (or
/// the CronJob's creation), and not before `startingDeadlineSeconds` ago.
fn start_of_window(cronjob: &CronJob, now: Timestamp) -> Timestamp {
    let status = cronjob.status.as_ref();
    let last = status
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cronjob.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    let deadline = cronjob
        .spec
        .as_ref()
        .and_then(|s| s.starting_deadline_seconds)
        .and_then(|s| now.checked_sub(jiff::SignedDuration::from_secs(s)).ok());
    deadline.map_or(last, |d| last.max(d))
}

/// Starts the Job for `time` as the concurrency policy allows, deleting the `active`
/// ones first under Replace; the Job made, None when the policy forbids one.
async fn start(
    client: &Client,
    cronjob: &CronJob,
    time: &Zoned,
    active: &mut Vec<Arc<Job>>,
) -> Result<Option<Job>, kube::Error> {
    let policy = cronjob
        .spec
        .as_ref()
        .and_then(|s| s.concurrency_policy.clone())
        .unwrap_or_default();
    match policy.as_str() {
        "Forbid" if !active.is_empty() => {
            tracing::debug!(cronjob = %cronjob.name_any(), "a Job still runs: this time is skipped");
            return Ok(None);
        }
        "Replace" => {
            for job in active.drain(..) {
                delete_job(client, cronjob, &job).await?;
            }
        }
        _ => {}
    }
    let job = job_for(cronjob, time)?;
    let api: Api<Job> = Api::namespaced(client.clone(), &cronjob.namespace().unwrap_or_default());
    match api.create(&PostParams::default(), &job).await {
        Ok(job) => {
            let message = format!("Created job {}", job.name_any());
            let event = ("Normal", "SuccessfulCreate", message.as_str());
            berth_events::record(client, cronjob, event, COMPONENT).await;
            Ok(Some(job))
        }
        // Made already: by an earlier pass whose status write was lost.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(api.get_opt(&job.name_any()).await?)
        }
        Err(error) => Err(error),
    }
}

/// The Job a CronJob runs at `time`.
fn job_for(cronjob: &CronJob, time: &Zoned) -> Result<Job, kube::Error> {
    let template = cronjob
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let metadata = template.metadata.unwrap_or_default();
    let mut annotations = metadata.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(time));
    let job = json!({
        "metadata": {
            "name": job_name(&cronjob.name_any(), time.timestamp()),
            "namespace": cronjob.namespace(),
            "labels": metadata.labels,
            "annotations": annotations,
            "ownerReferences": [crate::pods::controller_reference(cronjob)],
        },
        "spec": template.spec,
    });
    serde_json::from_value(job).map_err(kube::Error::SerdeError)
}

/// `<cronjob>-<minutes since the epoch>`: one name per scheduled time.
fn job_name(cronjob: &str, time: Timestamp) -> String {
    format!("{cronjob}-{}", time.as_second().div_euclid(60))
}

/// The time as Go's RFC 3339 prints it in its zone: `Z` for UTC, else the offset.
fn rfc3339(time: &Zoned) -> String {
    if time.offset() == jiff::tz::Offset::UTC {
        time.timestamp().to_string()
    } else {
        time.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Deletes a Job and, in the background, its pods.
async fn delete_job(client: &Client, cronjob: &CronJob, job: &Job) -> Result<(), kube::Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), &job.namespace().unwrap_or_default());
    match api
        .delete(&job.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => {
            let message = format!("Deleted job {}", job.name_any());
            let event = ("Normal", "SuccessfulDelete", message.as_str());
            berth_events::record(client, cronjob, event, COMPONENT).await;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Whether the Job finished by completing (not by failing).
fn succeeded(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

/// Deletes the oldest finished Jobs beyond the history limits. `owned` is oldest first.
async fn prune_history(
    client: &Client,
    cronjob: &CronJob,
    owned: &[Arc<Job>],
) -> Result<(), kube::Error> {
    let spec = cronjob.spec.clone().unwrap_or_default();
    let limits = [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ];
    for (success, limit) in limits {
        let done: Vec<_> = owned
            .iter()
            .filter(|j| finished(j) && succeeded(j) == success)
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        for job in done.into_iter().take(excess) {
            delete_job(client, cronjob, job).await?;
        }
    }
    Ok(())
}

/// The CronJob's status — its running Jobs, when it last ran one and when one last
/// succeeded — written when it changed, with SawCompletedJob for Jobs that finished.
async fn report(
    client: &Client,
    cronjob: &CronJob,
    (owned, active): (&[Arc<Job>], &[Arc<Job>]),
    last_scheduled: Option<Timestamp>,
) -> Result<(), kube::Error> {
    let previous = cronjob.status.clone().unwrap_or_default();
    let references: Vec<serde_json::Value> = active
        .iter()
        .map(|job| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "name": job.name_any(),
                   "namespace": job.namespace(), "uid": job.uid(),
                   "resourceVersion": job.resource_version()})
        })
        .collect();
    let last_success = owned
        .iter()
        .filter(|j| succeeded(j))
        .filter_map(|j| j.status.as_ref()?.completion_time.as_ref().map(|t| t.0))
        .chain(previous.last_successful_time.as_ref().map(|t| t.0))
        .max();
    let names = |list: &[k8s_openapi::api::core::v1::ObjectReference]| -> Vec<String> {
        list.iter().filter_map(|r| r.name.clone()).collect()
    };
    let was_active = names(previous.active.as_deref().unwrap_or_default());
    let now_active: Vec<String> = active.iter().map(|j| j.name_any()).collect();
    if was_active == now_active
        && previous.last_schedule_time.as_ref().map(|t| t.0) == last_scheduled
        && previous.last_successful_time.as_ref().map(|t| t.0) == last_success
    {
        return Ok(());
    }
    let status = json!({"status": {
        "active": if references.is_empty() { serde_json::Value::Null } else { json!(references) },
        "lastScheduleTime": last_scheduled.map(|t| t.to_string()),
        "lastSuccessfulTime": last_success.map(|t| t.to_string()),
    }});
    let api: Api<CronJob> =
        Api::namespaced(client.clone(), &cronjob.namespace().unwrap_or_default());
    api.patch_status(
        &cronjob.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await?;
    for job in owned
        .iter()
        .filter(|j| finished(j) && was_active.contains(&j.name_any()))
    {
        let condition = if succeeded(job) { "Complete" } else { "Failed" };
        let message = format!(
            "Saw completed job: {}, condition: {condition}",
            job.name_any()
        );
        let event = ("Normal", "SawCompletedJob", message.as_str());
        berth_events::record(client, cronjob, event, COMPONENT).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Zoned {
        text.parse::<Timestamp>().unwrap().to_zoned(TimeZone::UTC)
    }

    #[test]
    fn schedules_read_as_kubernetes_reads_them() {
        let every_minute = parse_schedule("* * * * *").unwrap();
        let now = at("2025-03-01T10:15:30Z");
        let next = every_minute.find_next_occurrence(&now, false).unwrap();
        assert_eq!(next.timestamp().to_string(), "2025-03-01T10:16:00Z");
        let hourly = parse_schedule("@hourly").unwrap();
        let next = hourly.find_next_occurrence(&now, false).unwrap();
        assert_eq!(next.timestamp().to_string(), "2025-03-01T11:00:00Z");
        let midnight = parse_schedule("@midnight").unwrap();
        let next = midnight.find_next_occurrence(&now, false).unwrap();
        assert_eq!(next.timestamp().to_string(), "2025-03-02T00:00:00Z");
        // Day of month or day of week, as Vixie cron: the 1st was a Saturday.
        let either = parse_schedule("0 0 1 * MON").unwrap();
        let next = either.find_next_occurrence(&now, false).unwrap();
        assert_eq!(next.timestamp().to_string(), "2025-03-03T00:00:00Z");
        for bad in [
            "* * * *",
            "0 * * * * *",
            "61 * * * *",
            "TZ=UTC * * * * *",
            "",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn only_the_most_recent_missed_time_is_due() {
        let schedule = parse_schedule("*/5 * * * *").unwrap();
        let now = at("2025-03-01T10:17:00Z");
        let last = "2025-03-01T09:00:00Z".parse().unwrap();
        let due = due(&schedule, last, &now).unwrap();
        assert_eq!(due.timestamp().to_string(), "2025-03-01T10:15:00Z");
        let ran = "2025-03-01T10:15:00Z".parse().unwrap();
        assert!(super::due(&schedule, ran, &now).is_none());
    }

    #[test]
    fn jobs_are_named_by_their_minute() {
        let time = at("2025-03-01T10:15:00Z");
        assert_eq!(job_name("backup", time.timestamp()), "backup-29013735");
        assert_eq!(rfc3339(&time), "2025-03-01T10:15:00Z");
        let paris = time.with_time_zone(TimeZone::fixed(jiff::tz::offset(1)));
        assert_eq!(rfc3339(&paris), "2025-03-01T11:15:00+01:00");
    }
}
