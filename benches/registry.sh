#!/usr/bin/env bash
# The registry's blob throughput: `berth registry serve` against distribution 2.8
# (Debian's docker-registry), both on loopback with their storage on the same disk, driven
# by curl so the client is not the bottleneck (skopeo's own copy floor is 0.76 s for
# 200 MiB). Three measures, side by side in one hyperfine run each:
#   - one 200 MiB blob uploaded (POST, then one streamed PUT), fresh random bytes each run;
#   - the same blob downloaded;
#   - 100 small blobs (4 KiB) pushed at once, 100 connections, each a POST and a PUT
#     (berth-registry's push_load example: curl cannot chain the two per transfer).
# The disk floor is what any registry must do with the 200 MiB: write it, fsync it, hash
# it and read it back (dd conv=fsync, then sha256sum).
set -euo pipefail
: "${BERTH:?set by benches/run}" "${PUSH_LOAD:?set by benches/run}"
work=$(mktemp -d /var/tmp/berth-bench-registry.XXXXXX)
distribution_port=5061
berth_port=5062
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
size_mib=${SIZE_MIB:-200}
runs=${RUNS:-5}

mkdir -p "$work/distribution"
cat >"$work/distribution/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/distribution/storage}}
http: {addr: 127.0.0.1:$distribution_port}
YML
docker-registry serve "$work/distribution/config.yml" >/dev/null 2>&1 &
pids+=($!)
"$BERTH" registry serve --addr "127.0.0.1:$berth_port" --root "$work/berth" >/dev/null 2>&1 &
pids+=($!)
for port in $distribution_port $berth_port; do
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.05; done
done

# upload PORT FILE: a blob in two requests, as docker and skopeo send a whole one.
cat >"$work/upload" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
port=$1 file=$2
digest=sha256:$(cat "$file.sha256")
location=$(curl -sf -X POST -o /dev/null -w '%header{location}' "http://127.0.0.1:$port/v2/bench/blobs/uploads/")
case $location in /*) location="http://127.0.0.1:$port$location" ;; esac
case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sf -o /dev/null -T "$file" -H 'Content-Type: application/octet-stream' "$location${sep}digest=$digest"
SH
# fresh: new random bytes for the next upload, and their digest beside them.
cat >"$work/fresh" <<SH
#!/usr/bin/env bash
head -c $((size_mib << 20)) /dev/urandom >"$work/big"
sha256sum "$work/big" | cut -d' ' -f1 >"$work/big.sha256"
sync
SH
chmod +x "$work"/{upload,fresh}

bash "$work/fresh"
# Both registries must accept what they are timed on.
for port in $distribution_port $berth_port; do
  "$work/upload" "$port" "$work/big"
  "$PUSH_LOAD" "127.0.0.1:$port" 100 4096 >/dev/null
done
digest=sha256:$(cat "$work/big.sha256")

hyperfine -N --runs "$runs" --export-json "$work/upload.json" --prepare "$work/fresh" \
  -n floor "bash -c 'dd if=$work/big of=$work/floor bs=4M conv=fsync status=none && sha256sum $work/floor >/dev/null'" \
  -n distribution "$work/upload $distribution_port $work/big" \
  -n berth "$work/upload $berth_port $work/big" >/dev/null
for port in $distribution_port $berth_port; do "$work/upload" "$port" "$work/big"; done
digest=sha256:$(cat "$work/big.sha256")
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/download.json" \
  -n distribution "curl -sf -o /dev/null http://127.0.0.1:$distribution_port/v2/bench/blobs/$digest" \
  -n berth "curl -sf -o /dev/null http://127.0.0.1:$berth_port/v2/bench/blobs/$digest" >/dev/null
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/small.json" \
  -n distribution "$PUSH_LOAD 127.0.0.1:$distribution_port 100 4096" \
  -n berth "$PUSH_LOAD 127.0.0.1:$berth_port 100 4096" >/dev/null

python3 - "$work" "$size_mib" <<'PY'
import json, sys
work, size = sys.argv[1], int(sys.argv[2])
def load(name):
    return {r["command"]: r["median"] for r in json.load(open(f"{work}/{name}.json"))["results"]}
up, down, small = load("upload"), load("download"), load("small")
mibs = lambda s: size / s
print(f"upload {size} MiB   floor {up['floor']*1000:7.1f} ms ({mibs(up['floor']):6.0f} MiB/s)  distribution {up['distribution']*1000:7.1f} ms ({mibs(up['distribution']):6.0f} MiB/s)  berth {up['berth']*1000:7.1f} ms ({mibs(up['berth']):6.0f} MiB/s)")
print(f"  berth throughput / distribution's  {up['distribution'] / up['berth']:.2f}x   berth time / floor  {up['berth'] / up['floor']:.2f}x")
print(f"download {size} MiB distribution {down['distribution']*1000:7.1f} ms ({mibs(down['distribution']):6.0f} MiB/s)  berth {down['berth']*1000:7.1f} ms ({mibs(down['berth']):6.0f} MiB/s)")
print(f"  berth throughput / distribution's  {down['distribution'] / down['berth']:.2f}x")
print(f"100 concurrent 4 KiB pushes  distribution {small['distribution']*1000:7.1f} ms  berth {small['berth']*1000:7.1f} ms  berth/distribution time {small['berth'] / small['distribution']:.2f}")
PY
