#!/usr/bin/env bash
# `berth server` under a fixed rate of ConfigMap creates (the load example: keep-alive
# HTTPS, latency measured from when each create was due), at 100 and 1,000 writes/s, on
# the embedded SQLite store and on etcd (Debian's etcd-server 3.4 on loopback); then the
# server's RSS. The Kubernetes SLO for mutating calls is p99 <= 1 s; the goal is
# p99 <= 25 ms on SQLite at 1,000 writes/s.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${LOAD:?set by benches/run}"
work=$(mktemp -d /tmp/berth-bench-apiserver.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_on() {  # NAME [DATASTORE]
  local name=$1 datastore=${2:-} address="127.0.0.1:$(port)" data="$work/$1"
  "$BERTH" server --data-dir "$data" --bind "$address" ${datastore:+--datastore "$datastore"} \
    >"$work/$name.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 300); do
    [ -f "$data/admin.kubeconfig" ] && curl -sf --cacert "$data/tls/ca.crt" "https://$address/healthz" >/dev/null && break
    sleep 0.05
  done
  printf '%-7s idle RSS %s KiB\n' "$name" "$(ps -o rss= -p "$server" | tr -d ' ')"
  for rate in 100 1000; do
    printf '%-7s ' "$name"; "$LOAD" "$data" "$address" "$rate" 10 32
  done
  printf '%-7s RSS after %s KiB\n' "$name" "$(ps -o rss= -p "$server" | tr -d ' ')"
}

run_on sqlite
client=$(port) peer=$(port)
etcd --name bench --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "bench=http://127.0.0.1:$peer" >"$work/etcd.log" 2>&1 &
pids+=($!)
run_on etcd "etcd://127.0.0.1:$client"
