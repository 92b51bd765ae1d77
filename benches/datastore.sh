#!/usr/bin/env bash
# Lease churn on the datastore, compressed in time (the churn example): 5,000 nodes
# (4 KiB Node objects) renewing their Leases as fast as 32 writers go, the history
# compacted as `berth server` compacts it for size, checked every 5,000 renewals (the
# server's 10 s at 500 renewals/s). Berth's SQLite store, then etcd (Debian's 3.4, its
# compaction plus defragmentation when half its file is free) as the peer. Goal: the
# SQLite file and its WAL <= 2x the live data throughout, with no growth of latency or
# CPU from the first window to the last. 43.2 million renewals are a day of 5,000 nodes;
# DATASTORE_UPDATES sets how much of it runs (default 2,000,000: 67 minutes' worth).
set -euo pipefail
: "${CHURN:?set by benches/run}"
updates=${DATASTORE_UPDATES:-2000000}
window=$((updates / 8))
work=$(mktemp -d /tmp/berth-bench-datastore.XXXXXX)
etcd_pid=
cleanup() {
  [ -z "$etcd_pid" ] || { kill "$etcd_pid" 2>/dev/null; wait "$etcd_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "sqlite:"
mkdir "$work/sqlite"
"$CHURN" "sqlite://$work/sqlite/state.db" "$updates" "$window"

echo "etcd:"
client=$(port) peer=$(port)
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" \
  --advertise-client-urls "http://127.0.0.1:$client" --listen-peer-urls "http://127.0.0.1:$peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "default=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$client/health" >/dev/null && break
  sleep 0.1
done
# etcd is slower per write: a quarter of the renewals show its trend.
"$CHURN" "etcd://127.0.0.1:$client" "$((updates / 4))" "$((window / 4))" "$work/etcd"
