//! The embedded backend: one SQLite database (WAL, synchronous commits) with one row per
//! revision, as k3s's kine keeps them. A key's value as of revision R is its row with the
//! greatest id ≤ R; a deletion is a row marked deleted (holding the last value, for the
//! watch's delete event).
//!
//! Writes go to one writer thread with a connection of its own, which commits them in
//! batches (group commit): whatever writes are waiting when it starts a transaction go
//! into it, each decided on what the ones before it wrote, and one fsync makes them all
//! durable before any is answered. Revisions are handed out in commit order, and each
//! committed row is then broadcast to the watches. Reads use a second connection, which
//! WAL lets run beside the writer.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;

use crate::{Error, Event, KeyValue, ListResult, Result, Store, Watch, prefix_end};

/// How many committed changes a slow watch may fall behind before it is ended.
const LIVE_BUFFER: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name BLOB NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kine_name_id ON kine (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// A new store begins at revision 1, as etcd does, so that revision 0 can mean "now": a
/// deleted row of an empty name, which no prefix matches.
const FIRST_REVISION: &str = "
INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value)
SELECT x'', 1, 1, 1, 0, x'' WHERE NOT EXISTS (SELECT 1 FROM kine);
";

/// One row: a revision of a key.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    name: Vec<u8>,
    deleted: bool,
    create_revision: i64,
    prev_revision: i64,
    value: Vec<u8>,
}

impl Row {
    fn key_value(&self) -> KeyValue {
        KeyValue {
            key: String::from_utf8_lossy(&self.name).into_owned(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.id,
        }
    }
}

const COLUMNS: &str = "id, name, deleted, create_revision, prev_revision, value";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        name: r.get(1)?,
        deleted: r.get::<_, i64>(2)? != 0,
        create_revision: r.get(3)?,
        prev_revision: r.get(4)?,
        value: r.get(5)?,
    })
}

fn backend(error: impl std::fmt::Display) -> Error {
    Error::Backend(error.to_string())
}

/// The most writes one transaction commits.
const MOST_PER_COMMIT: usize = 512;

/// The SQLite store.
pub struct SqliteStore {
    /// The readers' connection (and compaction's).
    connection: Arc<Mutex<Connection>>,
    live: broadcast::Sender<Arc<Announced>>,
    writes: std::sync::mpsc::Sender<Write>,
}

/// How a write turns the key's newest row (if any) into the new row's fields: deleted,
/// create revision, previous revision, value.
type Decide = Box<dyn FnOnce(Option<Row>) -> Result<(bool, i64, i64, Vec<u8>)> + Send>;

/// A committed write: the new row and the live value it replaced.
type Written = (Row, Option<KeyValue>);

/// One write waiting for the writer thread.
struct Write {
    key: String,
    decide: Decide,
    done: tokio::sync::oneshot::Sender<Result<Written>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path).map_err(backend)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| Error::Backend(format!("open {}: {e}", path.display())))?;
    Ok(connection)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let connection = connect(path)?;
        connection
            .execute_batch(SCHEMA)
            .and_then(|()| connection.execute_batch(FIRST_REVISION))
            .map_err(|e| Error::Backend(format!("open {}: {e}", path.display())))?;
        let writer = connect(path)?;
        let live = broadcast::channel(LIVE_BUFFER).0;
        let (writes, queue) = std::sync::mpsc::channel();
        let announce = live.clone();
        std::thread::Builder::new()
            .name("berth-sqlite-writer".into())
            .spawn(move || write_batches(writer, &queue, &announce))
            .map_err(backend)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            live,
            writes,
        })
    }

    /// Queues a write for the writer thread and waits until it is committed.
    async fn write(&self, key: &str, decide: Decide) -> Result<Written> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let write = Write {
            key: key.to_string(),
            decide,
            done,
        };
        self.writes
            .send(write)
            .map_err(|_| Error::Backend("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Backend("the SQLite writer has stopped".into()))?
    }

    /// Runs `work` on the connection, off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &broadcast::Sender<Arc<Announced>>) -> Result<T>
        + Send
        + 'static,
    ) -> Result<T> {
        let connection = Arc::clone(&self.connection);
        let live = self.live.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut connection, &live)
        })
        .await
        .map_err(backend)?
    }
}

fn current_revision(connection: &Connection) -> Result<i64> {
    connection
        .query_row("SELECT COALESCE(MAX(id), 0) FROM kine", [], |r| r.get(0))
        .map_err(backend)
}

fn compacted_revision(connection: &Connection) -> Result<i64> {
    connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'compact_revision'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map(|v| v.unwrap_or(0))
        .map_err(backend)
}

/// The key's newest row, deleted or not.
fn latest(connection: &Connection, key: &str) -> Result<Option<Row>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM kine WHERE name = ?1 ORDER BY id DESC LIMIT 1"),
            params![key.as_bytes()],
            read_row,
        )
        .optional()
        .map_err(backend)
}

/// A change as live watchers get it: its row's revision and key, and the event, built
/// once by the writer (who read the replaced row anyway) instead of by each watcher.
#[derive(Debug)]
struct Announced {
    id: i64,
    name: Vec<u8>,
    event: Event,
}

/// The writer thread: commits the queued writes in batches until the store is dropped.
fn write_batches(
    mut connection: Connection,
    queue: &std::sync::mpsc::Receiver<Write>,
    live: &broadcast::Sender<Arc<Announced>>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        commit(&mut connection, batch, live);
    }
}

/// Writes a batch in one transaction, then answers each write and announces what was
/// committed, in revision order. A write whose check fails (a conflict, say) fails
/// alone; a failed commit fails them all.
fn commit(
    connection: &mut Connection,
    batch: Vec<Write>,
    live: &broadcast::Sender<Arc<Announced>>,
) {
    let transaction =
        match connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
            Ok(transaction) => transaction,
            Err(error) => {
                let message = error.to_string();
                for write in batch {
                    let _ = write.done.send(Err(Error::Backend(message.clone())));
                }
                return;
            }
        };
    let outcomes: Vec<_> = batch
        .into_iter()
        .map(|write| (write.done, append(&transaction, &write.key, write.decide)))
        .collect();
    if let Err(error) = transaction.commit() {
        let message = error.to_string();
        for (done, _) in outcomes {
            let _ = done.send(Err(Error::Backend(message.clone())));
        }
        return;
    }
    for (done, outcome) in outcomes {
        if let Ok((row, replaced)) = &outcome {
            announce(live, row, replaced.clone());
        }
        let _ = done.send(outcome);
    }
}

/// Appends a row after the read that decided it, inside the batch's transaction.
fn append(transaction: &Connection, key: &str, decide: Decide) -> Result<Written> {
    let previous = latest(transaction, key)?;
    let replaced = previous.as_ref().filter(|r| !r.deleted).map(Row::key_value);
    let (deleted, create_revision, prev_revision, value) = decide(previous)?;
    let created = !deleted && create_revision == 0;
    let id: i64 = transaction
        .prepare_cached(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .and_then(|mut insert| {
            insert.query_row(
                params![
                    key.as_bytes(),
                    created,
                    deleted,
                    create_revision,
                    prev_revision,
                    value
                ],
                |r| r.get(0),
            )
        })
        .map_err(backend)?;
    let create_revision = if created { id } else { create_revision };
    if created {
        transaction
            .execute(
                "UPDATE kine SET create_revision = id WHERE id = ?1",
                params![id],
            )
            .map_err(backend)?;
    }
    let written = Row {
        id,
        name: key.as_bytes().to_vec(),
        deleted,
        create_revision,
        prev_revision,
        value,
    };
    Ok((written, replaced))
}

/// Tells the live watches of a committed row.
fn announce(live: &broadcast::Sender<Arc<Announced>>, written: &Row, replaced: Option<KeyValue>) {
    let event = if written.deleted {
        let mut prev = written.key_value();
        prev.mod_revision = written.prev_revision;
        Event::Delete {
            prev,
            revision: written.id,
        }
    } else {
        Event::Put {
            kv: written.key_value(),
            prev: replaced.filter(|_| written.prev_revision != 0),
        }
    };
    // No watcher is no error.
    let _ = live.send(Arc::new(Announced {
        id: written.id,
        name: written.name.clone(),
        event,
    }));
}

/// The key's newest row when the key exists and, unless `expected` is 0, is at revision
/// `expected`: what an update or a delete may replace.
fn live_at(previous: Option<Row>, key: &str, expected: i64) -> Result<Row> {
    match previous {
        Some(row) if !row.deleted => {
            if expected != 0 && row.id != expected {
                return Err(Error::Conflict {
                    key: key.to_string(),
                    expected,
                    actual: row.id,
                });
            }
            Ok(row)
        }
        _ => Err(Error::NotFound(key.to_string())),
    }
}

/// The change a row records, with the value it replaced.
fn event(connection: &Connection, row: &Row) -> Result<Event> {
    if row.deleted {
        let mut prev = row.key_value();
        prev.mod_revision = row.prev_revision;
        return Ok(Event::Delete {
            prev,
            revision: row.id,
        });
    }
    let prev = if row.prev_revision == 0 {
        None
    } else {
        connection
            .query_row(
                &format!("SELECT {COLUMNS} FROM kine WHERE id = ?1"),
                params![row.prev_revision],
                read_row,
            )
            .optional()
            .map_err(backend)?
            .map(|r| r.key_value())
    };
    Ok(Event::Put {
        kv: row.key_value(),
        prev,
    })
}

fn check_not_compacted(connection: &Connection, revision: i64) -> Result<()> {
    let compacted = compacted_revision(connection)?;
    if revision != 0 && revision < compacted {
        return Err(Error::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn revision(&self) -> Result<i64> {
        self.with(|c, _| current_revision(c)).await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.with(move |c, _| {
            Ok(latest(c, &key)?
                .filter(|r| !r.deleted)
                .map(|r| r.key_value()))
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult> {
        let (prefix, start_after) = (prefix.to_string(), start_after.to_string());
        self.with(move |c, _| {
            check_not_compacted(c, revision)?;
            let at = if revision == 0 {
                current_revision(c)?
            } else {
                revision
            };
            let mut statement = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM kine WHERE id IN (
                         SELECT MAX(id) FROM kine
                         WHERE name >= ?1 AND name < ?2 AND name > ?3 AND id <= ?4
                         GROUP BY name)
                     AND deleted = 0 ORDER BY name LIMIT ?5"
                ))
                .map_err(backend)?;
            let fetch = if limit == 0 { -1 } else { limit as i64 + 1 };
            let mut items: Vec<KeyValue> = statement
                .query_map(
                    params![
                        prefix.as_bytes(),
                        prefix_end(&prefix),
                        start_after.as_bytes(),
                        at,
                        fetch
                    ],
                    read_row,
                )
                .map_err(backend)?
                .map(|r| r.map(|r| r.key_value()).map_err(backend))
                .collect::<Result<_>>()?;
            let more = limit != 0 && items.len() > limit;
            items.truncate(if limit == 0 { items.len() } else { limit });
            Ok(ListResult {
                items,
                revision: at,
                more,
            })
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let exists = key.to_string();
        let decide: Decide = Box::new(move |previous| match previous {
            Some(row) if !row.deleted => Err(Error::Exists(exists)),
            previous => Ok((false, 0, previous.map_or(0, |r| r.id), value)),
        });
        let (written, _) = self.write(key, decide).await?;
        Ok(written.key_value())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue> {
        let name = key.to_string();
        let decide: Decide = Box::new(move |previous| {
            let row = live_at(previous, &name, expected)?;
            Ok((false, row.create_revision, row.id, value))
        });
        let (written, _) = self.write(key, decide).await?;
        Ok(written.key_value())
    }

    async fn delete(&self, key: &str, expected: i64) -> Result<(KeyValue, i64)> {
        let name = key.to_string();
        let decide: Decide = Box::new(move |previous| {
            let row = live_at(previous, &name, expected)?;
            Ok((true, row.create_revision, row.id, row.value))
        });
        let (written, last) = self.write(key, decide).await?;
        let last = last.ok_or_else(|| Error::NotFound(key.to_string()))?;
        Ok((last, written.id))
    }

    async fn watch(&self, prefix: &str, after: i64) -> Result<Watch> {
        let prefix = prefix.to_string();
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        // Subscribed before the history is read: a change committed meanwhile is in one
        // or both (the writer announces only after committing), and those in both are
        // skipped by revision.
        let (history, mut live, after) = self
            .with({
                let prefix = prefix.clone();
                move |c, live| {
                    let subscription = live.subscribe();
                    let after = if after == 0 { current_revision(c)? } else { after };
                    // Events after `after` begin at after + 1: all kept if that is not
                    // older than the compaction.
                    check_not_compacted(c, after + 1)?;
                    let mut statement = c
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM kine WHERE id > ?1 AND name >= ?2 AND name < ?3 ORDER BY id"
                        ))
                        .map_err(backend)?;
                    let rows: Vec<Row> = statement
                        .query_map(params![after, prefix.as_bytes(), prefix_end(&prefix)], read_row)
                        .map_err(backend)?
                        .collect::<rusqlite::Result<_>>()
                        .map_err(backend)?;
                    let events = rows.iter().map(|r| event(c, r)).collect::<Result<Vec<_>>>()?;
                    Ok((events, subscription, after))
                }
            })
            .await?;
        tokio::spawn(async move {
            let mut last = after;
            for event in history {
                last = event.revision();
                if sender.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            loop {
                let announced = match live.recv().await {
                    Ok(announced) => announced,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = sender
                            .send(Err(Error::Backend("the watch fell too far behind".into())))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if announced.id <= last || !announced.name.starts_with(prefix.as_bytes()) {
                    continue;
                }
                last = announced.id;
                if sender.send(Ok(announced.event.clone())).await.is_err() {
                    return;
                }
            }
        });
        Ok(receiver)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.with(move |c, _| {
            let transaction = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            // Each key keeps its newest row before the compaction revision, unless that
            // row is a deletion; everything older goes.
            transaction
                .execute(
                    "DELETE FROM kine WHERE id < ?1 AND id NOT IN (
                         SELECT MAX(id) FROM kine WHERE id < ?1 GROUP BY name)",
                    params![revision],
                )
                .and_then(|_| {
                    transaction.execute(
                        "DELETE FROM kine WHERE id < ?1 AND deleted = 1",
                        params![revision],
                    )
                })
                .and_then(|_| {
                    transaction.execute(
                        "INSERT INTO meta (key, value) VALUES ('compact_revision', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
                        params![revision],
                    )
                })
                .map_err(backend)?;
            transaction.commit().map_err(backend)
        })
        .await
    }
}
