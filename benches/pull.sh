#!/usr/bin/env bash
# Pulling a ~200 MiB image (one incompressible 192 MiB layer over busybox) from
# distribution 2.8 on loopback: `docker pull` through `berth daemon` (fetch, verify and
# unpack into the store) against `skopeo copy` to an OCI layout (fetch and verify only),
# side by side in one hyperfine run. Each run starts from an empty store. Then pushing
# the same image: `docker push` through `berth daemon` against `skopeo copy` from the OCI
# layout, each run to a second registry started empty.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${TESTKIT:?set by benches/run}"
work=$(mktemp -d /tmp/berth-bench-pull.XXXXXX)
port=5055
registry_pid=""
daemon=""
cleanup() {
  [ -z "$daemon" ] || { kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; }
  [ -z "$registry_pid" ] || { kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; }
  [ ! -f "$work/push-registry.pid" ] || kill "$(cat "$work/push-registry.pid")" 2>/dev/null || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
  rmdir /sys/fs/cgroup/*/berth-bench-pull 2>/dev/null || true
}
trap cleanup EXIT

# The image: busybox from the test kit, and a layer of random bytes on top.
"$TESTKIT" image busybox "$work/layout" >/dev/null
mkdir -p "$work/big/data"
head -c $((192 << 20)) /dev/urandom >"$work/big/data/blob"
tar -C "$work/big" -cf - data | gzip -1 >"$work/big.tar.gz"
python3 - "$work/layout" "$work/big.tar.gz" <<'PY'
import hashlib, json, os, subprocess, sys
layout, layer = sys.argv[1], sys.argv[2]
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    open(os.path.join(layout, "blobs/sha256", digest), "wb").write(data)
    return "sha256:" + digest, len(data)
def blob(digest):
    return open(os.path.join(layout, "blobs/sha256", digest.split(":")[1]), "rb").read()
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.loads(blob(index["manifests"][0]["digest"]))
config = json.loads(blob(manifest["config"]["digest"]))
data = open(layer, "rb").read()
layer_digest, layer_size = put(data)
diff_id = "sha256:" + hashlib.sha256(subprocess.run(["gzip", "-dc", layer], capture_output=True, check=True).stdout).hexdigest()
config["rootfs"]["diff_ids"].append(diff_id)
config_digest, config_size = put(json.dumps(config).encode())
manifest["config"].update(digest=config_digest, size=config_size)
manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size})
manifest_digest, manifest_size = put(json.dumps(manifest).encode())
index["manifests"][0].update(digest=manifest_digest, size=manifest_size)
json.dump(index, open(os.path.join(layout, "index.json"), "w"))
PY
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry/storage}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry/config.yml" >/dev/null 2>&1 &
registry_pid=$!
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.05; done
tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$work/layout/index.json")
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:$tag" "docker://127.0.0.1:$port/big:1"
printf 'image: %s MiB of layers\n' "$(( $(du -sb "$work/registry/storage" | cut -f1) >> 20 ))"

setsid "$BERTH" daemon --data-dir "$work/data" --exec-root "$work/run" --cgroup-parent berth-bench-pull \
  -H "unix://$work/berth.sock" >"$work/daemon.log" 2>&1 </dev/null &
daemon=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
export DOCKER_HOST="unix://$work/berth.sock" DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG" && echo '{}' >"$DOCKER_CONFIG/config.json"
# Each berth run must start from an empty store: a removed image leaves no blob behind.
docker pull -q "127.0.0.1:$port/big:1" >/dev/null && docker rmi -f "127.0.0.1:$port/big:1" >/dev/null
if docker pull "127.0.0.1:$port/big:1" | grep -q "Already exists"; then
  echo "the store kept a layer of a removed image: the runs would not start empty" >&2; exit 1
fi
hyperfine -N --warmup 1 --runs "${RUNS:-5}" --export-json "$work/result.json" \
  -n skopeo --prepare "rm -rf $work/skopeo-out" \
  "skopeo copy --quiet --src-tls-verify=false docker://127.0.0.1:$port/big:1 oci:$work/skopeo-out:big" \
  -n berth --prepare "docker rmi -f 127.0.0.1:$port/big:1" \
  "docker pull -q 127.0.0.1:$port/big:1" >/dev/null

# Pushes: to a registry emptied and started again before every run.
push_port=$((port + 1))
cat >"$work/empty-registry" <<SH
#!/usr/bin/env bash
[ -f "$work/push-registry.pid" ] && { kill \$(cat "$work/push-registry.pid") 2>/dev/null; wait \$(cat "$work/push-registry.pid") 2>/dev/null; }
while curl -s -o /dev/null "http://127.0.0.1:$push_port/v2/"; do sleep 0.02; done
rm -rf "$work/push-registry"
mkdir -p "$work/push-registry"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: $work/push-registry/storage}}\nhttp: {addr: 127.0.0.1:$push_port}\n' >"$work/push-registry/config.yml"
setsid docker-registry serve "$work/push-registry/config.yml" >/dev/null 2>&1 </dev/null &
echo \$! >"$work/push-registry.pid"
for _ in \$(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$push_port/v2/" && break; sleep 0.02; done
SH
chmod +x "$work/empty-registry"
docker pull -q "127.0.0.1:$port/big:1" >/dev/null
docker tag "127.0.0.1:$port/big:1" "127.0.0.1:$push_port/big:1"
hyperfine -N --runs "${RUNS:-5}" --export-json "$work/push.json" --prepare "$work/empty-registry" \
  -n skopeo "skopeo copy --quiet --dest-tls-verify=false oci:$work/layout:$tag docker://127.0.0.1:$push_port/big:1" \
  -n berth "docker push -q 127.0.0.1:$push_port/big:1" >/dev/null
kill "$(cat "$work/push-registry.pid")" 2>/dev/null || true

python3 - "$work/result.json" "$work/push.json" <<'PY'
import json, sys
for label, path in (("pull", sys.argv[1]), ("push", sys.argv[2])):
    results = {r["command"]: r for r in json.load(open(path))["results"]}
    for name, r in results.items():
        print(f"{label} {name:8s} {r['mean']*1000:8.1f} ms ± {r['stddev']*1000:6.1f}  (median {r['median']*1000:.1f} ms)")
    print(f"{label} berth/skopeo  {results['berth']['median'] / results['skopeo']['median']:.2f}")
PY
