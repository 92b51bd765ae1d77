#!/usr/bin/env bash
# Deletion as fast as creation (issue 18): `berth server` on SQLite with its controllers
# and no nodes (pods stay pending, so each goes as soon as it is deleted), through the
# load example's `deletion`: a Deployment of PODS pods made, scaled to 0, scaled up
# again and deleted (its pods then go by the garbage collector), and PODS pods created
# in a namespace that is then deleted; each printed as seconds and pods/s.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${LOAD:?set by benches/run}"
pods=${PODS:-10000}
work=$(mktemp -d /tmp/berth-bench-deletion.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
address="127.0.0.1:$port" data="$work/data"
"$BERTH" server --data-dir "$data" --bind "$address" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -f "$data/admin.kubeconfig" ] && curl -sf --cacert "$data/tls/ca.crt" "https://$address/healthz" >/dev/null && break
  sleep 0.05
done
"$LOAD" "$data" "$address" deletion "$pods" | sed 's/^/deletion  /'
