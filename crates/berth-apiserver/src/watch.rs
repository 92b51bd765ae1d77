//! `?watch=true`: a resource's changes as a stream of JSON lines `{"type", "object"}`,
//! as kube-apiserver sends them — from a resourceVersion, or after the current objects
//! as ADDED; BOOKMARK events carrying the revision reached when the client allows them
//! (and the one that ends the initial events of `sendInitialEvents`); an ERROR event
//! with a 410 Status when the revision asked for was compacted away; the end of the
//! stream after `timeoutSeconds`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;

use tokio::sync::broadcast;

use crate::Shared;
use crate::cache::{Change, Entry};
use crate::forms::Form;
use crate::resources::Resource;
use crate::selectors::Selection;
use crate::status::Status;
use crate::stored::Place;

/// How often a watch that allows bookmarks is told the revision it has reached.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// What a watch asks for, from its query.
struct WatchOptions {
    from: i64,
    initial_events: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
    /// A form other than the objects (kubectl's one-row Tables, metadata only).
    form: Option<Form>,
}

impl WatchOptions {
    fn from_query(query: &HashMap<String, String>, form: Option<Form>) -> Self {
        let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
        let from = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            from,
            // Without a resourceVersion a watch starts with the current objects.
            initial_events: flag("sendInitialEvents") || from == 0,
            bookmarks: flag("allowWatchBookmarks"),
            timeout: query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map(Duration::from_secs),
            form,
        }
    }
}

/// Starts the watch of `place` and answers with its stream: from the watch cache when
/// it reaches back far enough, else from the store.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    place: Place,
    query: HashMap<String, String>,
    form: Option<Form>,
) -> Result<Response, Status> {
    let options = WatchOptions::from_query(&query, form);
    let selection = Selection::parse(&query, &place.resource.kind)?;
    let prefix = place.prefix();
    let resource = place.resource;
    let start = if options.initial_events {
        0
    } else {
        options.from
    };
    if start > 0 {
        shared.cache.caught_up(start).await;
    }
    let (initial, feed, revision) = match shared.cache.follow_from(&prefix, start) {
        Some((following, revision)) => {
            let feed = Feed::Cache {
                feed: following.feed,
                prefix,
                cache: Arc::clone(&shared.cache),
                replay: std::collections::VecDeque::new(),
                last: revision,
            };
            (following.replay, Ok(feed), revision.max(start))
        }
        None => from_store(&shared, &prefix, &options)
            .await
            .map_err(|e| Status::from_store(e, &resource.plural, ""))?,
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let stream = Stream {
        resource,
        sender,
        options,
        revision,
        pending: Vec::new(),
    };
    tokio::spawn(stream.run(initial, feed, selection));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [("content-type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

type Start = (Vec<Arc<Change>>, berth_store::Result<Feed>, i64);

/// A watch from the store itself, for revisions older than the cache's window: the
/// current objects first when asked, then the store's changes after them.
async fn from_store(
    shared: &Shared,
    prefix: &str,
    options: &WatchOptions,
) -> berth_store::Result<Start> {
    let mut initial = Vec::new();
    let mut after = options.from;
    if options.initial_events {
        let listed = shared.store.list(prefix, "", 0, 0).await?;
        initial = listed
            .items
            .iter()
            .filter_map(|kv| {
                let entry = Entry::of(&kv.value, kv.mod_revision)?;
                Some(Arc::new(Change {
                    kind: "ADDED",
                    key: kv.key.clone(),
                    entry: Arc::new(entry),
                    revision: kv.mod_revision,
                }))
            })
            .collect();
        after = after.max(listed.revision);
    }
    let feed = shared.store.watch(prefix, after).await.map(Feed::Store);
    Ok((initial, feed, after))
}

/// Where a watch's changes come from.
enum Feed {
    /// The watch cache's changes, of every resource: those under `prefix` are this
    /// watch's. A watcher that falls behind the feed is caught up from the cache's
    /// history (`replay`) after `last`, the revision of the last change it was given.
    Cache {
        feed: broadcast::Receiver<Arc<Change>>,
        prefix: String,
        cache: Arc<crate::cache::Cache>,
        replay: std::collections::VecDeque<Arc<Change>>,
        last: i64,
    },
    /// The store's own watch.
    Store(berth_store::Watch),
}

impl Feed {
    /// The next change; None when the feed has ended (or this watcher fell behind
    /// further than the cache's history reaches: the client then watches again from
    /// the last revision it saw, as clients do).
    async fn next(&mut self) -> Option<berth_store::Result<Arc<Change>>> {
        match self {
            Feed::Cache {
                feed,
                prefix,
                cache,
                replay,
                last,
            } => loop {
                if let Some(change) = replay.pop_front() {
                    *last = change.revision;
                    return Some(Ok(change));
                }
                match feed.recv().await {
                    Ok(change)
                        if change.key.starts_with(prefix.as_str()) && change.revision > *last =>
                    {
                        *last = change.revision;
                        return Some(Ok(change));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (following, _) = cache.follow_from(prefix, *last)?;
                        *feed = following.feed;
                        replay.extend(following.replay);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            Feed::Store(watch) => loop {
                match watch.recv().await? {
                    Ok(event) => {
                        if let Some(change) = Change::of(&event) {
                            return Some(Ok(Arc::new(change)));
                        }
                    }
                    Err(error) => return Some(Err(error)),
                }
            },
        }
    }
}

/// How many bytes of events a watch gathers before it sends them even though more
/// are ready.
const GATHER_AT: usize = 128 * 1024;

/// One client's watch: what it asked for and where it has got to.
struct Stream {
    resource: Arc<Resource>,
    sender: Sender<Result<Bytes, std::io::Error>>,
    options: WatchOptions,
    /// The revision of the last event sent.
    revision: i64,
    /// Events not sent yet. While changes come faster than one at a time they are sent
    /// together — one write and one wake-up of the client for many, as kube-apiserver
    /// flushes a watch only when no event is waiting.
    pending: Vec<u8>,
}

impl Stream {
    async fn run(
        mut self,
        initial: Vec<Arc<Change>>,
        feed: berth_store::Result<Feed>,
        selection: Selection,
    ) {
        let deadline = self
            .options
            .timeout
            .map(|t| tokio::time::Instant::now() + t);
        for change in initial {
            if selection.matches_entry(&change.entry) {
                self.queue(&change);
            }
            if self.pending.len() >= GATHER_AT && !self.flush().await {
                return;
            }
        }
        if self.options.initial_events && self.options.bookmarks {
            let end = json!({"k8s.io/initial-events-end": "true"});
            self.bookmark(Some(end));
        }
        let mut feed = match feed {
            Ok(feed) => feed,
            Err(error) => return self.fail(error).await,
        };
        let mut ticks = tokio::time::interval(BOOKMARK_INTERVAL);
        ticks.tick().await;
        loop {
            let ready = if self.pending.len() < GATHER_AT {
                feed.next().now_or_never()
            } else {
                None
            };
            let change = match ready {
                Some(change) => change,
                None => {
                    if !self.flush().await {
                        return;
                    }
                    let timeout = async {
                        match deadline {
                            Some(deadline) => tokio::time::sleep_until(deadline).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        change = feed.next() => change,
                        _ = ticks.tick(), if self.options.bookmarks => {
                            self.bookmark(None);
                            continue;
                        }
                        () = timeout => return,
                    }
                }
            };
            let change = match change {
                Some(Ok(change)) => change,
                Some(Err(error)) => return self.fail(error).await,
                None => {
                    self.flush().await;
                    return;
                }
            };
            if selection.matches_entry(&change.entry) {
                self.queue(&change);
            }
        }
    }

    /// Adds one change to the events to send.
    fn queue(&mut self, change: &Change) {
        self.revision = self.revision.max(change.revision);
        if self.options.form == Some(Form::Metadata)
            && let Some(object) = crate::forms::metadata_text(&change.entry)
        {
            return self.queue_line(change.kind, &object);
        }
        if let Some(form) = self.options.form {
            // kubectl get -w asks for each object as a one-row Table.
            let object = change.entry.object();
            let answer = crate::forms::one(form, &self.resource, object, self.revision);
            return self.queue_value(change.kind, &answer);
        }
        if !self.resource.shown_as_stored() {
            let object = self.resource.present(change.entry.object());
            return self.queue_value(change.kind, &object);
        }
        self.queue_line(change.kind, &[&change.entry.json]);
    }

    /// Adds an event of `kind` whose object is the JSON text `object`, in parts.
    fn queue_line(&mut self, kind: &str, object: &[&[u8]]) {
        let line = &mut self.pending;
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        for part in object {
            line.extend_from_slice(part);
        }
        line.extend_from_slice(b"}\n");
    }

    fn queue_value(&mut self, kind: &str, object: &Value) {
        let object = serde_json::to_vec(object).unwrap_or_default();
        self.queue_line(kind, &[&object]);
    }

    /// Sends the events gathered; false once the client has gone.
    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let events = Bytes::from(std::mem::take(&mut self.pending));
        self.sender.send(Ok(events)).await.is_ok()
    }

    /// A BOOKMARK: the revision the watch has reached, and nothing else of the object.
    fn bookmark(&mut self, annotations: Option<Value>) {
        let mut metadata = json!({"resourceVersion": self.revision.to_string()});
        if let Some(annotations) = annotations {
            metadata["annotations"] = annotations;
        }
        let object = match self.options.form {
            Some(Form::Metadata) => crate::objects::metadata_only(&json!({"metadata": metadata})),
            _ => json!({
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version(),
                "metadata": metadata,
            }),
        };
        self.queue_value("BOOKMARK", &object);
    }

    /// Ends the watch with an ERROR event: 410 Expired when the revision asked for is
    /// gone, so the client lists again.
    async fn fail(mut self, error: berth_store::Error) {
        let status = match &error {
            berth_store::Error::Compacted { compacted, .. } => json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "Expired", "code": 410,
                "message": format!("too old resource version: {} ({compacted})", self.options.from),
            }),
            _ => json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "InternalError", "code": 500,
                "message": error.to_string(),
            }),
        };
        self.queue_value("ERROR", &status);
        self.flush().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_caught_up_from_the_history() {
        let (cache, feed) = crate::cache::Cache::by_hand();
        feed("/registry/configmaps/ns/first", 1);
        let prefix = "/registry/configmaps/";
        let (following, revision) = cache.follow_from(prefix, 1).unwrap();
        let mut watched = Feed::Cache {
            feed: following.feed,
            prefix: prefix.to_string(),
            cache: Arc::clone(&cache),
            replay: following.replay.into(),
            last: revision,
        };
        // More changes than the feed holds, while the watcher reads none of them; some
        // of another resource, which the watcher skips.
        let last = 2 + crate::cache::FEED_CAPACITY as i64 + 100;
        for revision in 2..=last {
            let resource = if revision % 10 == 0 {
                "secrets"
            } else {
                "configmaps"
            };
            feed(&format!("/registry/{resource}/ns/{revision}"), revision);
        }
        for revision in (2..=last).filter(|r| r % 10 != 0) {
            let change = watched.next().await.unwrap().unwrap();
            assert_eq!(change.revision, revision);
        }
    }
}
