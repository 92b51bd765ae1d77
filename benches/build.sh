#!/usr/bin/env bash
# Dockerfile builds: `berth build` through `berth daemon` against buildah 1.28 (`buildah
# bud`, overlay storage, runc: crun refuses hybrid cgroup hosts), side by side in one
# hyperfine run each. The Dockerfile copies 20 MiB of random bytes over busybox, runs one
# command and sets one variable (the issue's cold build); both start from busybox in
# their own store.
#   - cold: no cache and the previous image removed first (its layers with it), so the
#     COPY layer is written again and RUN runs;
#   - cached: the same build again with every cache warm: an unchanged rebuild.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${TESTKIT:?set by benches/run}"
# Lowercase only: buildah names an image pulled from a layout after its path.
work=/var/tmp/berth-bench-build.$$
mkdir "$work"
daemon=""
cleanup() {
  [ -z "$daemon" ] || { kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; }
  buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver overlay \
    rmi -a -f >/dev/null 2>&1 || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
  rmdir /sys/fs/cgroup/*/berth-bench-build 2>/dev/null || true
}
trap cleanup EXIT
runs=${RUNS:-10}

mkdir -p "$work/context"
head -c $((20 << 20)) /dev/urandom >"$work/context/data"
printf 'FROM busybox\nCOPY data /data\nRUN echo built > /built\nENV MODE=bench\n' >"$work/context/Dockerfile"

setsid "$BERTH" daemon --data-dir "$work/data" --exec-root "$work/run" --cgroup-parent berth-bench-build \
  -H "unix://$work/berth.sock" >"$work/daemon.log" 2>&1 </dev/null &
daemon=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
export DOCKER_HOST="unix://$work/berth.sock"
"$TESTKIT" archive busybox "$work/busybox.tar"
"$BERTH" load -q -i "$work/busybox.tar" >/dev/null
berth_build="$BERTH build -q -t bench:1"

buildah="buildah --root $work/buildah --runroot $work/buildah-run --storage-driver overlay"
"$TESTKIT" image busybox "$work/layout" >/dev/null
$buildah pull -q "oci:$work/layout:latest" >/dev/null
$buildah tag "$($buildah images -q | head -1)" localhost/busybox:latest
buildah_build="$buildah bud -q --runtime runc --network none -t bench:1"
context=$work/context

# Both must build what they are timed on.
$berth_build "$context" >/dev/null && $buildah_build --layers "$context" >/dev/null

hyperfine -N --runs "$runs" --export-json "$work/cold.json" \
  -n buildah --prepare "$buildah rmi -f bench:1" "$buildah_build --layers=false $context" \
  -n berth --prepare "$BERTH rmi -f bench:1" "$berth_build --no-cache $context" >/dev/null
$berth_build "$context" >/dev/null && $buildah_build --layers "$context" >/dev/null
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/cached.json" \
  -n buildah "$buildah_build --layers $context" \
  -n berth "$berth_build $context" >/dev/null

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
for name in ("cold", "cached"):
    r = {x["command"]: x for x in json.load(open(f"{work}/{name}.json"))["results"]}
    b, p = r["berth"]["median"], r["buildah"]["median"]
    print(f"{name:7s} buildah {p*1000:7.1f} ms  berth {b*1000:7.1f} ms  berth/buildah {b/p:.2f}")
PY
