#!/usr/bin/env bash
# Service rules at scale: 1,000 Services of 10 endpoints each in a fresh network
# namespace, then single-endpoint changes, each synced as Berth's agent syncs them (one
# nft transaction of only what changed) and, as the peer, by rewriting every rule (what
# a proxy that resyncs whole does). Issue 16's goal: a change in force within 1 s p99.
set -euo pipefail
: "${PROXY_SYNC:?set by benches/run}"
ns=berth-bench-proxy-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns exec "$ns" env SERVICES="${SERVICES:-1000}" ENDPOINTS="${ENDPOINTS:-10}" \
  CHANGES="${CHANGES:-100}" "$PROXY_SYNC"
