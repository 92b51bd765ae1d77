#!/usr/bin/env bash
# Pod startup on one node — `berth server` and `berth agent` on a network namespace of
# their own — with the image present: from a pod's creation to its Ready condition, as
# one watch sees both (kubectl's watch stream, timed as it arrives), over 100 pods created
# one after another and over a burst of 50 created at once; and the idle agent's RSS,
# fresh and after those pods.
# Kubernetes' SLO is p99 <= 5 s; issue 14's goals: p99 <= 300 ms one by one, <= 2 s for
# the burst, agent idle RSS <= 20 MiB (k3s's agent: 275 MB).
set -euo pipefail
source "$(dirname "$0")/lib/one-node.bash"
one_node pods busybox
sleep 2
fresh=$(agent_rss)
fresh_split=$(agent_split)

pod() {
  printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s"},"spec":{"terminationGracePeriodSeconds":0,"containers":[{"name":"main","image":"busybox:latest","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]}]}}\n' "$1"
}

# Times each pod from its ADDED event to the event showing it Ready, as the events arrive.
cat >"$work/timer.py" <<'PY'
import json, os, sys, time
added, ready, buffer = {}, {}, ""
decoder = json.JSONDecoder()
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    now = time.monotonic()
    buffer += chunk.decode()
    while True:
        buffer = buffer.lstrip()
        try:
            event, end = decoder.raw_decode(buffer)
        except ValueError:
            break
        buffer = buffer[end:]
        pod = event.get("object", {})
        name = pod.get("metadata", {}).get("name")
        if event.get("type") == "ADDED":
            added.setdefault(name, now)
        conditions = pod.get("status", {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ready.setdefault(name, now)
for name, start in added.items():
    if name in ready:
        print(name, round((ready[name] - start) * 1000, 1))
PY

measure() {
  local label=$1 count=$2 mode=$3
  kube get pods --watch --output-watch-events -o json 2>/dev/null |
    python3 "$work/timer.py" >"$work/$label.ms" &
  local watcher=$!
  sleep 1
  if [ "$mode" = one-by-one ]; then
    for i in $(seq "$count"); do
      pod "$label-$i" | kube create -f - >/dev/null
      kube wait --for=condition=Ready "pod/$label-$i" --timeout=60s >/dev/null
    done
  else
    for i in $(seq "$count"); do pod "$label-$i"; done | kube create -f - >/dev/null
    kube wait --for=condition=Ready pods --all --timeout=120s >/dev/null
  fi
  sleep 1
  pkill -f "kubectl get pods --watch" || true
  wait "$watcher" 2>/dev/null || true
  kube delete pods --all --grace-period=0 --wait --timeout=120s >/dev/null
  python3 - "$label" "$count" "$work/$label.ms" <<'PY'
import sys
label, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = sorted(float(line.split()[1]) for line in open(path) if line.strip())
if len(times) != count:
    sys.exit(f"{label}: {len(times)} of {count} pods were seen Ready")
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{label}: {count} pods, created -> Ready: p50 {pick(0.5):.0f} ms, p99 {pick(0.99):.0f} ms, max {times[-1]:.0f} ms")
PY
}
measure one-by-one 100 one-by-one
measure burst 50 burst
# Idle: past the 10 s its runtime keeps idle blocking threads (and their stacks) for
# another burst.
sleep 12
after=$(agent_rss)
echo "agent idle RSS: $((fresh / 1024)) MiB ($fresh KiB) fresh, $((after / 1024)) MiB ($after KiB) after the 150 pods"
echo "agent idle RSS split: fresh $fresh_split; after the pods $(agent_split)"

