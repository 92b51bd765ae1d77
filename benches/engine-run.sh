#!/usr/bin/env bash
# `berth run --rm busybox /bin/true` and the same through the stock docker CLI, both
# against `berth daemon`,
# beside `podman run --rm` (with and without its network set-up), in one hyperfine run;
# then the daemon's idle memory. Podman 4.3 runs here with runc and cgroupfs (crun 1.8.1
# refuses this machine's hybrid cgroup layout) and with ulimits the machine allows (no
# CAP_SYS_RESOURCE: its default nofile of 1048576 cannot be set).
set -euo pipefail
: "${BERTH:?set by benches/run}" "${TESTKIT:?set by benches/run}"
command -v podman >/dev/null || { echo "podman is not installed: apt-get install podman" >&2; exit 1; }
work=$(mktemp -d /tmp/berth-bench-engine.XXXXXX)
# Podman's network set-up adds nftables tables and /run/netns: taken away again after.
tables_before=$(nft list tables 2>/dev/null || true)
"$TESTKIT" archive busybox "$work/busybox.tar"
setsid "$BERTH" daemon --data-dir "$work/data" --exec-root "$work/run" --cgroup-parent berth-bench \
  -H "unix://$work/berth.sock" >"$work/daemon.log" 2>&1 </dev/null &
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true
  podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay system reset -f >/dev/null 2>&1 || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
  rmdir /sys/fs/cgroup/*/berth-bench 2>/dev/null || true
  nft list tables 2>/dev/null | while read -r _ family name; do
    grep -qx "table $family $name" <<<"$tables_before" || nft delete table "$family" "$name"
  done
}
trap cleanup EXIT
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
export DOCKER_HOST="unix://$work/berth.sock" DOCKER_CONFIG="$work/docker-config"
# Podman reads DOCKER_CONFIG too, and insists on finding a config file there.
mkdir -p "$DOCKER_CONFIG" && echo '{}' >"$DOCKER_CONFIG/config.json"
docker load -i "$work/busybox.tar" >/dev/null
podman=(podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay
  --runtime runc --cgroup-manager cgroupfs)
"${podman[@]}" load -i "$work/busybox.tar" >/dev/null
limits="--ulimit nofile=1024:20000 --ulimit nproc=4096:4096"
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$work/result.json" \
  -n berth-cli "$BERTH run --rm busybox /bin/true" \
  -n docker-cli+berth "docker run --rm busybox /bin/true" \
  -n podman "${podman[*]} run --rm $limits busybox /bin/true" \
  -n podman-no-network "${podman[*]} run --rm $limits --network none busybox /bin/true" ${HYPERFINE_FLAGS:-} >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in results.items():
    print(f"{name:18s} {r['mean']*1000:7.1f} ms ± {r['stddev']*1000:5.1f}  (median {r['median']*1000:.1f} ms)")
for client in ("berth-cli", "docker-cli+berth"):
    berth = results[client]["median"]
    for peer in ("podman", "podman-no-network"):
        print(f"{client}/{peer:18s} {berth / results[peer]['median']:.2f}")
PY
printf 'berth daemon idle RSS %s KiB\n' "$(ps -o rss= -p "$daemon" | tr -d ' ')"
