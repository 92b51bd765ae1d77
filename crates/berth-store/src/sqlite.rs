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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::config::DbConfig;
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
    /// How many keys are live, kept by the writer thread.
    keys: Arc<AtomicU64>,
}

/// What the writer thread tells of each commit: the live watches, and the live keys'
/// count.
type Listeners = (broadcast::Sender<Arc<Announced>>, Arc<AtomicU64>);

/// Makes the database give freed pages back to the file system on request (incremental
/// auto-vacuum), converting one made without it: that takes a whole VACUUM, once.
fn reclaimable(connection: &Connection) -> rusqlite::Result<()> {
    let mode: i64 = connection.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != INCREMENTAL_VACUUM {
        connection.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    Ok(())
}

/// `PRAGMA auto_vacuum`'s value for INCREMENTAL.
const INCREMENTAL_VACUUM: i64 = 2;

/// How many keys are live: the newest row of each name that is not a deletion.
fn count_keys(connection: &Connection) -> rusqlite::Result<u64> {
    connection.query_row(
        "SELECT COUNT(*) FROM kine JOIN (SELECT MAX(id) AS newest FROM kine GROUP BY name)
         ON id = newest WHERE deleted = 0",
        [],
        |r| r.get::<_, i64>(0).map(|count| count.max(0) as u64),
    )
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

/// Opens a connection in WAL mode. The WAL is cut back to 4 MiB (SQLite's automatic
/// checkpoint size) after each checkpoint that empties it: without a limit it keeps the
/// largest size it ever reached, which under a burst of writes is gigabytes.
fn connect(path: &Path) -> Result<Connection> {
    let opened = |e: rusqlite::Error| Error::Backend(format!("open {}: {e}", path.display()));
    let connection = Connection::open(path).map_err(backend)?;
    planned_once(&connection).map_err(opened)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA journal_size_limit = 4194304;",
        )
        .map_err(opened)?;
    Ok(connection)
}

/// Keeps each prepared statement's plan whatever values are bound to it (SQLite's query
/// planner stability guarantee). Without it SQLite plans the key's newest row
/// (`... WHERE name = ?1 ORDER BY id DESC LIMIT 1`) anew for every key bound: a parse
/// and a plan on every read and every write, 8.6% of the API server's time under pod
/// creates. Our statements have one good plan, whatever the key.
fn planned_once(connection: &Connection) -> rusqlite::Result<()> {
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(drop)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let connection = connect(path)?;
        let opened = |e: rusqlite::Error| Error::Backend(format!("open {}: {e}", path.display()));
        reclaimable(&connection).map_err(opened)?;
        connection
            .execute_batch(SCHEMA)
            .and_then(|()| connection.execute_batch(FIRST_REVISION))
            .map_err(opened)?;
        let keys = Arc::new(AtomicU64::new(count_keys(&connection).map_err(opened)?));
        let writer = connect(path)?;
        let live = broadcast::channel(LIVE_BUFFER).0;
        let (writes, queue) = std::sync::mpsc::channel();
        let announce = (live.clone(), Arc::clone(&keys));
        std::thread::Builder::new()
            .name("berth-sqlite-writer".into())
            .spawn(move || write_batches(writer, &queue, &announce))
            .map_err(backend)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            live,
            writes,
            keys,
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
    first_row(
        connection,
        "SELECT COALESCE(MAX(id), 0) FROM kine",
        [],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn compacted_revision(connection: &Connection) -> Result<i64> {
    let sql = "SELECT value FROM meta WHERE key = 'compact_revision'";
    first_row(connection, sql, [], |r| r.get(0))
        .optional()
        .map(|v| v.unwrap_or(0))
        .map_err(backend)
}

/// The key's newest row, deleted or not.
fn latest(connection: &Connection, key: &str) -> Result<Option<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM kine WHERE name = ?1 ORDER BY id DESC LIMIT 1");
    first_row(connection, &sql, params![key.as_bytes()], read_row)
        .optional()
        .map_err(backend)
}

/// The first row `sql` finds, read by `read`, through the connection's cache of prepared
/// statements: a statement parsed and planned anew for every write was an eighth of the
/// writer thread's time.
fn first_row<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    connection.prepare_cached(sql)?.query_row(params, read)
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
    live: &Listeners,
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
fn commit(connection: &mut Connection, batch: Vec<Write>, (live, keys): &Listeners) {
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
            match (row.deleted, replaced.is_some()) {
                (false, false) => keys.fetch_add(1, Ordering::Relaxed),
                (true, true) => keys.fetch_sub(1, Ordering::Relaxed),
                _ => 0,
            };
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
            .prepare_cached("UPDATE kine SET create_revision = id WHERE id = ?1")
            .and_then(|mut update| update.execute(params![id]))
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
        let sql = format!("SELECT {COLUMNS} FROM kine WHERE id = ?1");
        first_row(connection, &sql, params![row.prev_revision], read_row)
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
        // Reads before `revision` are refused from now on, then its rows go: in steps of
        // a bounded number of rows, each its own transaction, so that the writer and the
        // readers wait for one step at most, not for the whole history. Every row before
        // `revision` is looked at, those an earlier compaction kept too (each key's
        // newest then may be superseded now).
        self.with(move |c, _| mark_compacted(c, revision)).await?;
        let mut cursor = 0;
        while let Some(next) = self
            .with(move |c, _| compact_step(c, cursor, revision))
            .await?
        {
            cursor = next;
        }
        // Freed pages go back to the file system once they are a quarter of the file:
        // a file that only ever grows is what k3s users find their kine database doing.
        if self.with(|c, _| free_share(c)).await? > 0.25 {
            while self.with(|c, _| vacuum_step(c)).await? {}
        }
        self.with(|c, _| checkpoint(c)).await
    }

    async fn keys(&self) -> Result<u64> {
        Ok(self.keys.load(Ordering::Relaxed))
    }
}

/// How many rows one compaction transaction goes over.
const COMPACTION_STEP: i64 = 10_000;

/// How many free pages one incremental vacuum gives back (8 MiB of 4 KiB pages).
const VACUUM_STEP: i64 = 2048;

/// Records that revisions before `revision` can no longer be read.
fn mark_compacted(connection: &Connection, revision: i64) -> Result<()> {
    connection
        .execute(
            "INSERT INTO meta (key, value) VALUES ('compact_revision', ?1)
             ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
            params![revision],
        )
        .map(drop)
        .map_err(backend)
}

/// Removes, of the next COMPACTION_STEP rows from `cursor` on before `revision`, those
/// compacting to `revision` drops: rows a newer row of their key before `revision`
/// supersedes, and deletions. Where the next step starts; None when none is left.
fn compact_step(connection: &mut Connection, cursor: i64, revision: i64) -> Result<Option<i64>> {
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let last: Option<i64> = transaction
        .query_row(
            "SELECT MAX(id) FROM (SELECT id FROM kine WHERE id >= ?1 AND id < ?2
                                  ORDER BY id LIMIT ?3)",
            params![cursor, revision, COMPACTION_STEP],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let Some(last) = last else {
        return Ok(None);
    };
    transaction
        .execute(
            "DELETE FROM kine WHERE id >= ?1 AND id <= ?2 AND (deleted = 1 OR EXISTS (
                 SELECT 1 FROM kine AS newer
                 WHERE newer.name = kine.name AND newer.id > kine.id AND newer.id < ?3))",
            params![cursor, last, revision],
        )
        .map_err(backend)?;
    transaction.commit().map_err(backend)?;
    Ok(Some(last + 1))
}

/// How much of the file is free pages.
fn free_share(connection: &Connection) -> Result<f64> {
    let pragma = |name: &str| -> Result<i64> {
        connection
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(backend)
    };
    let (pages, free) = (pragma("page_count")?, pragma("freelist_count")?);
    Ok(free as f64 / pages.max(1) as f64)
}

/// Gives a step of free pages back to the file system; whether any are left.
fn vacuum_step(connection: &Connection) -> Result<bool> {
    connection
        .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))
        .and_then(|()| connection.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0)))
        .map(|free| free > 0)
        .map_err(backend)
}

/// Copies the WAL's pages into the database and empties it: compaction and vacuuming
/// wrote the WAL full of pages, and the file system gets the space back only once they
/// are in the database and the WAL is cut. Waits for readers (and holds writers) for
/// as long as that takes, which compactions' rarity affords.
fn checkpoint(connection: &Connection) -> Result<()> {
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_row_is_not_planned_anew_for_each_key() {
        let connection = connect(Path::new(":memory:")).expect("connect");
        connection.execute_batch(SCHEMA).expect("schema");
        connection.execute_batch(FIRST_REVISION).expect("first");
        for key in ["/a", "/b", "/c"] {
            assert!(latest(&connection, key).expect("read").is_none());
        }
        let sql = format!("SELECT {COLUMNS} FROM kine WHERE name = ?1 ORDER BY id DESC LIMIT 1");
        let statement = connection.prepare_cached(&sql).expect("cached");
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0
        );
    }
}
