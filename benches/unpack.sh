#!/usr/bin/env bash
# Layer unpacking against GNU tar: the same layer (this machine's /usr/include and
# /usr/share/{doc,man}: many small files, as distribution images have), plain and
# gzip-compressed, unpacked into an empty directory by `tar -x` and by the image store
# (which also hashes it twice and checks every path beneath the target). Side by side in
# one hyperfine run.
set -euo pipefail
: "${UNPACK:?set by benches/run}"
work=$(mktemp -d /tmp/berth-bench-unpack.XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C / -cf "$work/layer.tar" usr/include usr/share/doc usr/share/man 2>/dev/null || true
gzip -1 -c "$work/layer.tar" >"$work/layer.tar.gz"
printf 'layer: %s MiB uncompressed, %s files\n' \
  "$(( $(stat -c %s "$work/layer.tar") >> 20 ))" "$(tar -tf "$work/layer.tar" | wc -l)"
fresh="sh -c 'rm -rf $work/out && mkdir $work/out'"
hyperfine -N --warmup 1 --runs "${RUNS:-5}" --export-json "$work/result.json" --prepare "$fresh" \
  -n tar "tar -xf $work/layer.tar -C $work/out" \
  -n berth "$UNPACK $work/layer.tar $work/out" \
  -n tar-gzip "tar -xzf $work/layer.tar.gz -C $work/out" \
  -n berth-gzip "$UNPACK $work/layer.tar.gz $work/out" >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in results.items():
    print(f"{name:12s} {r['mean']*1000:8.1f} ms ± {r['stddev']*1000:6.1f}  (median {r['median']*1000:.1f} ms)")
print(f"berth/tar            {results['berth']['median'] / results['tar']['median']:.2f}")
print(f"berth-gzip/tar-gzip  {results['berth-gzip']['median'] / results['tar-gzip']['median']:.2f}")
PY
