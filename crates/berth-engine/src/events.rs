//! The engine's event stream (`docker events`): every change to a container, image,
//! network or volume, in Docker's shape. The most recent events are kept for `--since`;
//! subscribers get each new one through a broadcast channel. Publishing and subscribing
//! take one lock, so a subscriber sees the history and then the live events without a gap
//! or a repeat.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::Engine;
use crate::model::Container;

/// How many past events `docker events --since` can reach back to on a daemon's engine.
pub const DOCKER_EVENT_HISTORY: usize = 1024;

/// One event, serialized as the Docker API sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `container`, `image`, `network` or `volume`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// `create`, `start`, `die`, `health_status: healthy`…
    #[serde(rename = "Action")]
    pub action: String,
    /// What the event is about.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: &'static str,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// The action again: the field old clients read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The actor's id again, for old clients (containers and images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The image a container event's container runs, for old clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The object of an event.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    /// Its id (a name for volumes).
    #[serde(rename = "ID")]
    pub id: String,
    /// Name, image, exit code, signal…
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The history and the live channel.
#[derive(Debug)]
pub(crate) struct Events {
    recent: Mutex<VecDeque<Event>>,
    history: usize,
    live: broadcast::Sender<Event>,
}

impl Events {
    /// Keeping the last `history` events, and as many for a subscriber that lags.
    pub(crate) fn new(history: usize) -> Self {
        let history = history.max(1);
        Self {
            recent: Mutex::new(VecDeque::new()),
            history,
            live: broadcast::channel(history).0,
        }
    }
}

impl Events {
    fn publish(&self, event: Event) {
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() == self.history {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // No subscriber is no error.
        let _ = self.live.send(event);
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Engine {
    /// Publishes an event of `kind` about `id`.
    pub fn emit(
        &self,
        kind: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let nanos = now_nanos();
        let legacy = matches!(kind, "container" | "image");
        self.events.publish(Event {
            kind,
            action: action.to_string(),
            scope: "local",
            time: nanos / 1_000_000_000,
            time_nano: nanos,
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: attributes
                .get("image")
                .filter(|_| kind == "container")
                .cloned(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
        });
    }

    /// Publishes a container event, with the container's name, image and labels as its
    /// attributes, and `extra` ones.
    pub(crate) fn emit_container(
        &self,
        container: &Container,
        action: &str,
        extra: &[(&str, String)],
    ) {
        let mut attributes: BTreeMap<String, String> =
            container.request.labels.clone().unwrap_or_default();
        attributes.insert("name".into(), container.name.clone());
        attributes.insert("image".into(), container.image.clone());
        for (key, value) in extra {
            attributes.insert((*key).to_string(), value.clone());
        }
        self.emit("container", action, &container.id, attributes);
    }

    /// The events kept so far and a receiver of the ones to come.
    pub fn subscribe_events(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self
            .events
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let receiver = self.events.live.subscribe();
        (recent.iter().cloned().collect(), receiver)
    }
}
