#!/usr/bin/env bash
# The scheduler like kube-scheduler's scheduler_perf SchedulingBasic: `berth server` on
# SQLite with NODES simulated nodes (`berth agent --simulate`), then PODS pods created
# as fast as 32 connections go; reports pods/s from the first create to the last
# binding, each pod's delay from created to bound (p50/p99), and the server's RSS.
# Kubernetes' CI demands >= 680 pods/s (10,000 pods) and >= 810 (50,000) on 5,000 nodes;
# the goal is >= 8,000 pods/s. With BACKLOG=1 the server serves the API alone
# (--leader-elect=false) while the PODS pods are created, then `berth controller-manager`
# starts and schedules the backlog: pods/s from its first binding to its last, the
# scheduler apart from the create rate.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${LOAD:?set by benches/run}"
nodes=${NODES:-5000} pods=${PODS:-10000}
source "$(dirname "$0")/lib/server.bash"
# No agent of the server's own: the machine would join as a real node beside the simulated
# ones. 5,000 nodes need more /24s than the default /16 has.
cidr=(--cluster-cidr 10.0.0.0/8)
serve scheduler --disable-agent --disable-registry "${cidr[@]}" ${BACKLOG:+--leader-elect=false}
"$BERTH" agent --simulate "$nodes" --node-name bench --server "https://$address" \
  --token "$(cat "$data/node-token")" --certificate-authority "$data/tls/ca.crt" >"$work/agent.log" 2>&1 &
pids+=($!)
count_nodes() {
  curl -sf --cacert "$data/tls/ca.crt" -H "Authorization: Bearer $(cat "$data/admin-token")" \
    "https://$address/api/v1/nodes" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))'
}
start=$SECONDS
until [ "$(count_nodes)" -ge "$nodes" ]; do sleep 0.5; done
printf 'scheduler  %s simulated nodes registered in %s s\n' "$nodes" "$((SECONDS - start))"
if [ -n "${BACKLOG:-}" ]; then
  "$LOAD" "$data" "$address" backlog "$pods" \
    "$BERTH" controller-manager --kubeconfig "$data/admin.kubeconfig" "${cidr[@]}" | sed 's/^/scheduler  /'
else
  printf 'scheduler  '; "$LOAD" "$data" "$address" schedule "$pods"
fi
printf 'scheduler  server RSS %s KiB with %s nodes and %s pods\n' "$(ps -o rss= -p "$server" | tr -d ' ')" "$nodes" "$pods"
