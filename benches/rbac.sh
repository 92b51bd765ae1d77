#!/usr/bin/env bash
# What RBAC's decisions cost: ConfigMap creates and gets at 1,000/s on SQLite, once as the
# admin (system:masters, decided before RBAC) and once as a ServiceAccount that a
# RoleBinding lets do it, with 50 more bindings in the cluster for RBAC to look through
# besides the default policy's. Goal (issue 15): RBAC adds no more than 5 % to the p99.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${LOAD:?set by benches/run}"
work=$(mktemp -d /tmp/berth-bench-rbac.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
address="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
data="$work/data"
"$BERTH" server --data-dir "$data" --bind "$address" --leader-elect=false --disable-agent >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -f "$data/admin.kubeconfig" ] && curl -sf --cacert "$data/tls/ca.crt" "https://$address/healthz" >/dev/null && break
  sleep 0.05
done
kube() { kubectl --kubeconfig "$data/admin.kubeconfig" "$@" >/dev/null; }
kube create serviceaccount loader
kube create role configmaps --verb=create,get,patch,list --resource=configmaps
kube create rolebinding loader --role=configmaps --serviceaccount=default:loader
for i in $(seq 50); do
  kube create rolebinding "other-$i" --clusterrole=view --user="user-$i"
done
token=$(kubectl --kubeconfig "$data/admin.kubeconfig" create token loader --duration=1h)
for verb in create get; do
  for round in 1 2; do
    printf 'admin          %s ' "$round"; "$LOAD" "$data" "$address" "$verb" 1000 10 32
    printf 'serviceaccount %s ' "$round"; LOAD_TOKEN=$token "$LOAD" "$data" "$address" "$verb" 1000 10 32
  done
done
