//! The etcd backend: the store's operations as etcd v3 requests. Creates, updates and
//! deletes are transactions comparing the key's revision, so they are compare-and-swap
//! across every server that shares the cluster; watches are etcd's own.

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};

use crate::{Error, Event, KeyValue, ListResult, Result, Store, Watch, prefix_end};

/// A store on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

/// etcd's errors in the store's terms: a compacted revision is named as such.
fn error(requested: i64) -> impl Fn(etcd_client::Error) -> Error {
    move |e| {
        let text = e.to_string();
        if text.contains("compacted") {
            Error::Compacted {
                requested,
                compacted: requested + 1,
            }
        } else {
            Error::Backend(format!("etcd: {text}"))
        }
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`host:port` each).
    pub async fn connect(endpoints: &[&str]) -> Result<Self> {
        let endpoints: Vec<String> = endpoints.iter().map(|e| format!("http://{e}")).collect();
        let client = Client::connect(&endpoints, None).await.map_err(error(0))?;
        Ok(Self { client })
    }

    /// Runs a transaction that does `then` if `when` holds, else reads the key.
    async fn swap(
        &self,
        key: &str,
        when: Compare,
        then: TxnOp,
    ) -> Result<etcd_client::TxnResponse> {
        let txn = Txn::new()
            .when(vec![when])
            .and_then(vec![then])
            .or_else(vec![TxnOp::get(key, None)]);
        self.client.clone().txn(txn).await.map_err(error(0))
    }
}

/// Why a compare-and-swap failed, from the key as the failed transaction read it.
fn refusal(key: &str, expected: i64, response: &etcd_client::TxnResponse) -> Error {
    let current = response.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => get.kvs().first().map(key_value),
        _ => None,
    });
    match current {
        Some(kv) => Error::Conflict {
            key: key.to_string(),
            expected,
            actual: kv.mod_revision,
        },
        None => Error::NotFound(key.to_string()),
    }
}

/// The condition of an update or delete: the key is at `expected`, or merely exists.
fn expectation(key: &str, expected: i64) -> Compare {
    if expected == 0 {
        Compare::version(key, CompareOp::Greater, 0)
    } else {
        Compare::mod_revision(key, CompareOp::Equal, expected)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn revision(&self) -> Result<i64> {
        let response = self
            .client
            .clone()
            .get(vec![0u8], None)
            .await
            .map_err(error(0))?;
        Ok(header_revision(response.header()))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self.client.clone().get(key, None).await.map_err(error(0))?;
        Ok(response.kvs().first().map(key_value))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
        revision: i64,
    ) -> Result<ListResult> {
        let start: Vec<u8> = if start_after.is_empty() {
            prefix.as_bytes().to_vec()
        } else {
            // The first key after `start_after`.
            [start_after.as_bytes(), &[0]].concat()
        };
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(limit as i64)
            .with_revision(revision);
        let response = self
            .client
            .clone()
            .get(start, Some(options))
            .await
            .map_err(error(revision))?;
        Ok(ListResult {
            items: response.kvs().iter().map(key_value).collect(),
            revision: if revision == 0 {
                header_revision(response.header())
            } else {
                revision
            },
            more: response.more(),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let response = self
            .swap(
                key,
                Compare::create_revision(key, CompareOp::Equal, 0),
                TxnOp::put(key, value.clone(), None),
            )
            .await?;
        if !response.succeeded() {
            return Err(Error::Exists(key.to_string()));
        }
        let revision = header_revision(response.header());
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue> {
        let response = self
            .swap(
                key,
                expectation(key, expected),
                TxnOp::put(key, value.clone(), Some(PutOptions::new().with_prev_key())),
            )
            .await?;
        if !response.succeeded() {
            return Err(refusal(key, expected, &response));
        }
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision: header_revision(response.header()),
        })
    }

    async fn delete(&self, key: &str, expected: i64) -> Result<(KeyValue, i64)> {
        let response = self
            .swap(
                key,
                expectation(key, expected),
                TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key())),
            )
            .await?;
        if !response.succeeded() {
            return Err(refusal(key, expected, &response));
        }
        let last = response
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(key_value),
                _ => None,
            })
            .ok_or_else(|| Error::NotFound(key.to_string()))?;
        Ok((last, header_revision(response.header())))
    }

    async fn watch(&self, prefix: &str, after: i64) -> Result<Watch> {
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_prev_key()
            .with_start_revision(if after == 0 { 0 } else { after + 1 });
        let mut stream = self
            .client
            .clone()
            .watch(prefix, Some(options))
            .await
            .map_err(error(after))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let response = match stream.message().await {
                    Ok(Some(response)) => response,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = sender.send(Err(error(after)(e))).await;
                        return;
                    }
                };
                if response.canceled() {
                    let failure = if response.compact_revision() > 0 {
                        Error::Compacted {
                            requested: after,
                            compacted: response.compact_revision(),
                        }
                    } else {
                        Error::Backend(format!(
                            "etcd ended the watch: {}",
                            response.cancel_reason()
                        ))
                    };
                    let _ = sender.send(Err(failure)).await;
                    return;
                }
                for event in response.events() {
                    let Some(kv) = event.kv() else {
                        continue;
                    };
                    let change = match event.event_type() {
                        EventType::Put => Event::Put {
                            kv: key_value(kv),
                            prev: event.prev_kv().map(key_value),
                        },
                        EventType::Delete => Event::Delete {
                            prev: event.prev_kv().map_or_else(|| key_value(kv), key_value),
                            revision: kv.mod_revision(),
                        },
                    };
                    if sender.send(Ok(change)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(receiver)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let mut client = self.client.clone();
        client
            .compact(revision, None)
            .await
            .map_err(error(revision))?;
        // Compaction frees space inside etcd's file but never gives it back: that takes
        // a defragmentation, which blocks the member while it runs, so only once half
        // the file is free.
        let status = client.status().await.map_err(error(revision))?;
        if status.raft_used_db_size() * 2 < status.db_size() {
            client.defragment().await.map_err(error(revision))?;
        }
        Ok(())
    }

    async fn keys(&self) -> Result<u64> {
        let everything = GetOptions::new().with_from_key().with_count_only();
        let response = self
            .client
            .clone()
            .get(vec![0u8], Some(everything))
            .await
            .map_err(error(0))?;
        Ok(response.count().max(0) as u64)
    }
}
