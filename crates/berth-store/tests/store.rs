//! One suite, both backends: the embedded SQLite store and a real etcd (Debian's
//! etcd-server, started on loopback ports of its own for each test) must behave alike.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use berth_store::{Error, EtcdStore, Event, SqliteStore, Store};
use berth_testkit::etcd::Etcd;
use berth_testkit::guard::Scratch;

/// A store under test and what must outlive it (etcd's process, the files).
struct Backend {
    store: Arc<dyn Store>,
    _etcd: Option<Etcd>,
    _scratch: Scratch,
}

async fn sqlite() -> Backend {
    let scratch = Scratch::new("store-sqlite").unwrap();
    let store = SqliteStore::open(&scratch.path().join("state.db")).unwrap();
    Backend {
        store: Arc::new(store),
        _etcd: None,
        _scratch: scratch,
    }
}

async fn etcd() -> Backend {
    let scratch = Scratch::new("store-etcd").unwrap();
    let etcd =
        Etcd::start(&scratch.path().join("etcd")).expect("start etcd (Debian's etcd-server)");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(store) = EtcdStore::connect(&[&etcd.endpoint]).await
            && store.revision().await.is_ok()
        {
            return Backend {
                store: Arc::new(store),
                _etcd: Some(etcd),
                _scratch: scratch,
            };
        }
        assert!(
            std::time::Instant::now() < deadline,
            "etcd did not answer within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The same test on both backends.
macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let backend = super::sqlite().await;
                $body(backend.store.clone()).await;
            }

            #[tokio::test]
            async fn etcd() {
                let backend = super::etcd().await;
                $body(backend.store.clone()).await;
            }
        }
    };
}

async fn writes_are_compare_and_swap(store: Arc<dyn Store>) {
    let created = store
        .create("/registry/pods/a", b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(created.create_revision, created.mod_revision);
    assert_eq!(
        store.create("/registry/pods/a", b"again".to_vec()).await,
        Err(Error::Exists("/registry/pods/a".into()))
    );
    let updated = store
        .update("/registry/pods/a", b"two".to_vec(), created.mod_revision)
        .await
        .unwrap();
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.create_revision, created.create_revision);
    // A stale revision is a conflict naming the current one; nothing is written.
    let stale = store
        .update("/registry/pods/a", b"three".to_vec(), created.mod_revision)
        .await;
    assert_eq!(
        stale,
        Err(Error::Conflict {
            key: "/registry/pods/a".into(),
            expected: created.mod_revision,
            actual: updated.mod_revision,
        })
    );
    let got = store.get("/registry/pods/a").await.unwrap().unwrap();
    assert_eq!(got, updated);
    assert_eq!(got.value, b"two");
    let (last, deleted_at) = store
        .delete("/registry/pods/a", updated.mod_revision)
        .await
        .unwrap();
    assert_eq!(last.value, b"two");
    assert!(deleted_at > updated.mod_revision);
    assert_eq!(store.get("/registry/pods/a").await.unwrap(), None);
    assert_eq!(
        store.update("/registry/pods/a", b"x".to_vec(), 0).await,
        Err(Error::NotFound("/registry/pods/a".into()))
    );
    assert_eq!(
        store.delete("/registry/pods/a", 0).await,
        Err(Error::NotFound("/registry/pods/a".into()))
    );
    // Created again, it starts a new life.
    let again = store
        .create("/registry/pods/a", b"new".to_vec())
        .await
        .unwrap();
    assert!(again.create_revision > deleted_at);
}
on_both!(compare_and_swap, writes_are_compare_and_swap);

async fn lists_page_and_read_the_past(store: Arc<dyn Store>) {
    for name in ["c", "a", "b", "d"] {
        store
            .create(&format!("/registry/pods/{name}"), name.as_bytes().to_vec())
            .await
            .unwrap();
    }
    store
        .create("/registry/podsx/other", b"x".to_vec())
        .await
        .unwrap();
    store
        .create("/registry/nodes/n", b"n".to_vec())
        .await
        .unwrap();
    let before = store.revision().await.unwrap();
    store.delete("/registry/pods/b", 0).await.unwrap();
    store
        .update("/registry/pods/c", b"C".to_vec(), 0)
        .await
        .unwrap();

    let keys = |items: &[berth_store::KeyValue]| -> Vec<String> {
        items.iter().map(|kv| kv.key.clone()).collect()
    };
    let now = store.list("/registry/pods/", "", 0, 0).await.unwrap();
    assert_eq!(
        keys(&now.items),
        ["/registry/pods/a", "/registry/pods/c", "/registry/pods/d"]
    );
    assert_eq!(now.items[1].value, b"C");
    assert!(!now.more);
    let first = store.list("/registry/pods/", "", 2, 0).await.unwrap();
    assert_eq!(keys(&first.items), ["/registry/pods/a", "/registry/pods/c"]);
    assert!(first.more);
    let rest = store
        .list("/registry/pods/", "/registry/pods/c", 2, first.revision)
        .await
        .unwrap();
    assert_eq!(keys(&rest.items), ["/registry/pods/d"]);
    assert!(!rest.more);
    let past = store.list("/registry/pods/", "", 0, before).await.unwrap();
    assert_eq!(past.revision, before);
    assert_eq!(past.items.len(), 4);
    assert_eq!(past.items[2].value, b"c");
}
on_both!(lists, lists_page_and_read_the_past);

async fn next(watch: &mut berth_store::Watch) -> Event {
    tokio::time::timeout(Duration::from_secs(10), watch.recv())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on")
        .expect("no error")
}

async fn watches_replay_then_follow(store: Arc<dyn Store>) {
    let start = store.revision().await.unwrap();
    let a = store
        .create("/registry/pods/a", b"1".to_vec())
        .await
        .unwrap();
    store
        .create("/registry/other/x", b"x".to_vec())
        .await
        .unwrap();
    let mut replay = store.watch("/registry/pods/", start).await.unwrap();
    let mut live = store.watch("/registry/pods/", 0).await.unwrap();
    let updated = store
        .update("/registry/pods/a", b"2".to_vec(), a.mod_revision)
        .await
        .unwrap();
    let (_, deleted_at) = store.delete("/registry/pods/a", 0).await.unwrap();

    match next(&mut replay).await {
        Event::Put { kv, prev } => {
            assert_eq!((kv.value, prev), (b"1".to_vec(), None));
        }
        other => panic!("expected the create, got {other:?}"),
    }
    for watch in [&mut replay, &mut live] {
        match next(watch).await {
            Event::Put { kv, prev } => {
                assert_eq!(kv, updated);
                assert_eq!(prev.unwrap().value, b"1");
            }
            other => panic!("expected the update, got {other:?}"),
        }
        match next(watch).await {
            Event::Delete { prev, revision } => {
                assert_eq!((prev.value, revision), (b"2".to_vec(), deleted_at));
            }
            other => panic!("expected the delete, got {other:?}"),
        }
    }
}
on_both!(watches, watches_replay_then_follow);

async fn compaction_forgets_the_past_by_name(store: Arc<dyn Store>) {
    let first = store
        .create("/registry/pods/a", b"1".to_vec())
        .await
        .unwrap();
    let second = store
        .update("/registry/pods/a", b"2".to_vec(), 0)
        .await
        .unwrap();
    store
        .create("/registry/pods/b", b"b".to_vec())
        .await
        .unwrap();
    store.compact(second.mod_revision).await.unwrap();
    assert!(matches!(
        store
            .list("/registry/pods/", "", 0, first.mod_revision)
            .await,
        Err(Error::Compacted { .. })
    ));
    let watched = match store.watch("/registry/pods/", first.mod_revision - 1).await {
        Err(error) => Err(error),
        Ok(mut watch) => tokio::time::timeout(Duration::from_secs(10), watch.recv())
            .await
            .unwrap()
            .unwrap()
            .map(|_| ()),
    };
    assert!(
        matches!(watched, Err(Error::Compacted { .. })),
        "{watched:?}"
    );
    let now = store.list("/registry/pods/", "", 0, 0).await.unwrap();
    assert_eq!(now.items.len(), 2);
    assert_eq!(
        store.get("/registry/pods/a").await.unwrap().unwrap().value,
        b"2"
    );
}
on_both!(compaction, compaction_forgets_the_past_by_name);

async fn live_keys_are_counted(store: Arc<dyn Store>) {
    let before = store.keys().await.unwrap();
    store.create("/registry/x/a", b"1".to_vec()).await.unwrap();
    store.create("/registry/x/b", b"1".to_vec()).await.unwrap();
    store
        .update("/registry/x/a", b"2".to_vec(), 0)
        .await
        .unwrap();
    store.delete("/registry/x/b", 0).await.unwrap();
    assert_eq!(store.keys().await.unwrap(), before + 1);
}

on_both!(counting, live_keys_are_counted);

#[tokio::test]
async fn compaction_gives_the_space_back_to_the_file_system() {
    let scratch = Scratch::new("store-vacuum").unwrap();
    let path = scratch.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    let size = || {
        let wal = path.with_extension("db-wal");
        std::fs::metadata(&path).unwrap().len() + std::fs::metadata(wal).map_or(0, |m| m.len())
    };
    let value = vec![b'x'; 4096];
    for round in 0..200 {
        for key in 0..10 {
            let key = format!("/registry/leases/{key}");
            if round == 0 {
                store.create(&key, value.clone()).await.unwrap();
            } else {
                store.update(&key, value.clone(), 0).await.unwrap();
            }
        }
        if round == 0 {
            assert_eq!(store.keys().await.unwrap(), 10);
        }
    }
    let grown = size();
    store
        .compact(store.revision().await.unwrap())
        .await
        .unwrap();
    let compacted = size();
    // 2,000 rows of 4 KiB came to about 8 MiB; 10 remain.
    assert!(grown > 8 << 20, "{grown}");
    assert!(compacted < 2 << 20, "{grown} -> {compacted}");
    let value = store.get("/registry/leases/3").await.unwrap().unwrap();
    assert_eq!(value.value.len(), 4096);
}

#[tokio::test]
async fn an_unknown_datastore_is_refused_by_name() {
    let refused = berth_store::open("mysql://db").await;
    assert!(
        matches!(refused, Err(Error::Backend(m)) if m.contains("unknown datastore \"mysql://db\""))
    );
}
