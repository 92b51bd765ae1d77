#!/usr/bin/env bash
# How soon a CustomResourceDefinition is served: 30 definitions created one after another,
# each timed from the answer to its create to the first custom object of it created (a
# client retrying at once on 404, as `kubectl apply` of a definition and its objects
# does). Goal (issue 15): served within 1 s.
set -euo pipefail
: "${BERTH:?set by benches/run}"
work=$(mktemp -d /tmp/berth-bench-crd.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data="$work/data"
"$BERTH" server --data-dir "$data" --bind "127.0.0.1:$port" --leader-elect=false --disable-agent >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -f "$data/admin-token" ] && curl -sf --cacert "$data/tls/ca.crt" "https://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.05
done
python3 - "$port" "$data" <<'PY'
import http.client, json, ssl, statistics, sys, time
port, data = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=f"{data}/tls/ca.crt")
token = open(f"{data}/admin-token").read().strip()
connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
def post(path, body):
    connection.request("POST", path, json.dumps(body), headers)
    response = connection.getresponse()
    response.read()
    return response.status
waits = []
for i in range(30):
    group, plural = f"bench{i}.example.com", f"widgets{i}"
    definition = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": f"widget{i}", "kind": f"Widget{i}"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
                    "properties": {"size": {"type": "integer"}}}}}}}]}}
    assert post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", definition) == 201
    created = time.monotonic()
    widget = {"apiVersion": f"{group}/v1", "kind": f"Widget{i}", "metadata": {"name": "a"},
              "spec": {"size": 1}}
    while post(f"/apis/{group}/v1/namespaces/default/{plural}", widget) != 201:
        pass
    waits.append((time.monotonic() - created) * 1000)
waits.sort()
print(f"definition created → first object created: p50 {statistics.median(waits):.1f} ms, "
      f"max {waits[-1]:.1f} ms over {len(waits)} definitions")
PY
