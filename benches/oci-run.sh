#!/usr/bin/env bash
# `berth oci run` of /bin/true in a busybox bundle against crun and runc, side by side in
# one hyperfine run, plus `unshare` as the floor; then each runtime's peak RSS. The
# `+seccomp` rows run the same bundle with Docker's default seccomp profile, as every
# `docker run` does (`berth oci spec --seccomp-profile` converts it). `berth-api` is the
# in-process library API's create -> start -> wait -> delete, the engine's path.
#
# Everything runs in one private mount namespace with /sys/fs/cgroup/unified unmounted:
# crun 1.8.1 refuses this machine's hybrid cgroup layout otherwise, and the same
# environment for every runtime keeps the comparison fair.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${TESTKIT:?set by benches/run}" "${LIFECYCLE_BENCH:?set by benches/run}"
work=$(mktemp -d /tmp/berth-bench-oci.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$TESTKIT" bundle busybox "$work/bundle" /bin/true >/dev/null
runs=${RUNS:-100}
cp -a "$work/bundle" "$work/seccomp"
mkdir "$work/spec"
"$BERTH" oci spec -b "$work/spec" --seccomp-profile /usr/share/containers/seccomp.json
python3 - "$work/spec/config.json" "$work/seccomp/config.json" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))["linux"]["seccomp"]
config = json.load(open(sys.argv[2]))
config["linux"]["seccomp"] = profile
json.dump(config, open(sys.argv[2], "w"))
PY

unshare -m --propagation private bash -s "$BERTH" "$work" "$runs" "$LIFECYCLE_BENCH" <<'INNER'
set -euo pipefail
berth=$1 work=$2 runs=$3 lifecycle=$4
umount /sys/fs/cgroup/unified 2>/dev/null || true
cd "$work/bundle"
commands=(
  "$berth oci --root $work/berth run -b $work/bundle bench"
  "crun --root $work/crun run -b $work/bundle bench"
  "runc --root $work/runc run -b $work/bundle bench"
  "$berth oci --root $work/berth run -b $work/seccomp bench"
  "crun --root $work/crun run -b $work/seccomp bench"
  "runc --root $work/runc run -b $work/seccomp bench"
  "unshare -p -f -m -u -i -n --mount-proc /bin/true"
)
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/result.json" \
  -n berth -n crun -n runc -n berth+seccomp -n crun+seccomp -n runc+seccomp -n unshare-floor "${commands[@]}" >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in results.items():
    print(f"{name:14s} {r['mean']*1000:7.2f} ms ± {r['stddev']*1000:5.2f}  (median {r['median']*1000:.2f} ms)")
# Ratios of medians: one busy moment of a shared machine moves a mean, not a median.
for suffix in ("", "+seccomp"):
    berth = results["berth" + suffix]["median"]
    for peer in ("crun", "runc"):
        print(f"berth{suffix}/{peer}{suffix:9s} {berth / results[peer + suffix]['median']:.2f}")
print(f"berth/unshare-floor  {results['berth']['median'] / results['unshare-floor']['median']:.2f}")
PY
# The engine's path: the library API in-process, create -> start -> wait -> delete.
"$lifecycle" "$work/bundle" "$work/api" "$runs"
for name in berth crun runc; do
  case $name in
    berth) cmd=("$berth" oci --root "$work/berth" run -b "$work/bundle" rss) ;;
    *) cmd=("$name" --root "$work/$name" run -b "$work/bundle" rss) ;;
  esac
  # GNU time's own pre-exec child is small, so %M is the runtime's (or its init's) peak.
  kib=$(/usr/bin/time -f %M "${cmd[@]}" 2>&1 >/dev/null | tail -1)
  printf '%-14s peak RSS %s KiB\n' "$name" "$kib"
done
INNER
