//! `GET /events`: the engine's events as a stream of JSON objects, one per line, filtered
//! as `docker events --filter` asks; `since` replays the kept history first, `until` ends
//! the stream.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State as Extract};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_engine::Event;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::{ApiError, State};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// `docker events --filter`: each key must match one of its values (`label`: all of them).
#[derive(Default)]
struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        crate::query::filters(text).map(Self)
    }

    fn matches(&self, event: &Event) -> bool {
        let attribute = |name: &str| event.actor.attributes.get(name).map(String::as_str);
        self.0.iter().all(|(key, values)| {
            if key == "label" {
                return crate::query::labels_match(values, attribute);
            }
            values.iter().any(|wanted| match key.as_str() {
                "type" => event.kind == wanted,
                "event" => {
                    event.action == *wanted
                        || event.action.split(':').next() == Some(wanted.as_str())
                }
                "container" | "network" | "volume" | "image" if event.kind == key => {
                    event.actor.id.starts_with(wanted.as_str())
                        || attribute("name") == Some(wanted.as_str())
                }
                "image" => attribute("image") == Some(wanted.as_str()),
                _ => false,
            })
        })
    }
}

/// A time of `since`/`until`: Unix seconds, possibly with a fraction; in nanoseconds.
fn nanos(text: &str) -> Result<i64, ApiError> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let seconds: i64 = seconds
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid timestamp {text:?}")))?;
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    Ok(seconds * 1_000_000_000 + digits.parse::<i64>().unwrap_or(0))
}

fn line(event: &Event) -> Bytes {
    let mut text = serde_json::to_vec(event).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

/// `GET /events`.
pub(crate) async fn events(
    Extract(engine): Extract<State>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let filters = Filters::parse(query.filters.as_deref())?;
    let since = query.since.as_deref().map(nanos).transpose()?;
    let until = query.until.as_deref().map(nanos).transpose()?;
    let (history, mut live) = engine.subscribe_events();
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let in_window = move |e: &Event| {
        since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u)
    };
    tokio::spawn(async move {
        if since.is_some() {
            for event in history
                .iter()
                .filter(|e| in_window(e) && filters.matches(e))
            {
                if sender.send(Ok(line(event))).await.is_err() {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            tokio::time::Instant::now()
                + std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
        });
        loop {
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, live.recv()).await {
                    Ok(next) => next,
                    Err(_) => return,
                },
                None => live.recv().await,
            };
            match next {
                Ok(event) if in_window(&event) && filters.matches(&event) => {
                    if sender.send(Ok(line(&event))).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
