# Sourced by the benchmarks that need a node: `berth server --disable-agent` and one
# `berth agent` joined to it, both on a network namespace of their own (so the node's
# bridge, nftables tables, DNS address and ports are theirs alone), measured apart.
# `one_node NAME IMAGE...` starts them with the test kit's images (busybox, webapp) in
# the agent's air-gap folder; everything goes when the script exits.
: "${BERTH:?set by benches/run}" "${TESTKIT:?set by benches/run}"

one_node() {
  local name=$1
  shift
  work=$(mktemp -d "/tmp/berth-bench-$name.XXXXXX")
  host=berth-bench-$name-$$
  cgroup=berth-bench-$name
  server=""
  agent=""
  trap one_node_cleanup EXIT
  ip netns add "$host"
  on_host ip link set lo up
  mkdir -p "$work/node/agent/images"
  for image in "$@"; do
    "$TESTKIT" archive "$image" "$work/node/agent/images/$image.tar"
  done
  # Under nsenter directly, so that $! is the process itself (nsenter becomes it).
  nsenter --net="/run/netns/$host" "$BERTH" server --data-dir "$work/data" --bind 127.0.0.1:6443 \
    --disable-agent >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do [ -s "$work/data/token" ] && break; sleep 0.1; done
  # ${AGENT_WRAPPER} runs the agent under a profiler (scripts/hot-functions), which makes
  # its start ten times slower or more: NODE_READY_TENTHS waits longer for it.
  # shellcheck disable=SC2086
  nsenter --net="/run/netns/$host" ${AGENT_WRAPPER:-} "$BERTH" agent --server https://127.0.0.1:6443 \
    --token "$(cat "$work/data/token")" --data-dir "$work/node" --exec-root "$work/run" \
    --node-name bench-node --node-ip 127.0.0.1 --cgroup-parent "$cgroup" \
    --cni-conf-dir "$work/no-cni" >"$work/agent.log" 2>&1 &
  agent=$!
  for _ in $(seq "${NODE_READY_TENTHS:-300}"); do
    kube get nodes 2>/dev/null | grep -q ' Ready ' && return
    sleep 0.1
  done
  echo "the node never became Ready" >&2
  cat "$work/agent.log" >&2
  exit 1
}

on_host() { nsenter --net="/run/netns/$host" "$@"; }
kube() { on_host env KUBECONFIG="$work/data/admin.kubeconfig" HOME="$work" kubectl "$@"; }

one_node_cleanup() {
  if [ -n "$server" ]; then
    kube delete pods --all --grace-period=0 --wait --timeout=120s >/dev/null 2>&1 || true
    for process in $agent $server; do
      kill "$process" 2>/dev/null || true
      wait "$process" 2>/dev/null || true
    done
  fi
  # Pods a controller made again after the delete outlive their agent, as they should:
  # their processes are killed here.
  for dir in /sys/fs/cgroup/$cgroup /sys/fs/cgroup/*/$cgroup; do
    [ -d "$dir" ] && find "$dir" -name cgroup.procs -exec cat {} +
  done | sort -u | xargs -r kill -9 2>/dev/null || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  # Depth first: the pods' QoS-class groups (besteffort/, burstable/) stay under it; a
  # killed process leaves its group a moment later.
  for _ in 1 2 3 4 5; do
    for dir in /sys/fs/cgroup/$cgroup /sys/fs/cgroup/*/$cgroup; do
      [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    ls -d /sys/fs/cgroup/$cgroup /sys/fs/cgroup/*/$cgroup >/dev/null 2>&1 || break
    sleep 0.2
  done
  rm -rf "$work"
}

# The agent's resident set: in all, and split into its own memory (anonymous) and the
# pages of the berth binary and libraries it touched (file-backed, shared with any
# other berth process).
agent_status() { cat "/proc/$agent/status"; }
agent_rss() { agent_status | awk '/VmRSS/ {print $2}'; }
agent_split() { agent_status | awk '/RssAnon/ {a=$2} /RssFile/ {f=$2} END {printf "%d MiB anonymous + %d MiB file-backed", a/1024, f/1024}'; }
