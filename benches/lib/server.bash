# Sourced by the benchmarks that need `berth server` on loopback: `serve NAME [FLAG...]`
# starts one with its state in a scratch folder and returns once it answers, setting
# work, data, address and server; what it started (and whatever else the script adds
# to pids) goes when the script exits.
: "${BERTH:?set by benches/run}"

pids=()

serve() {
  local name=$1 port
  shift
  work=$(mktemp -d "/tmp/berth-bench-$name.XXXXXX")
  trap serve_cleanup EXIT
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  address="127.0.0.1:$port" data="$work/data"
  "$BERTH" server --data-dir "$data" --bind "$address" "$@" >"$work/server.log" 2>&1 &
  server=$!
  pids+=("$server")
  for _ in $(seq 300); do
    [ -f "$data/admin.kubeconfig" ] && curl -sf --cacert "$data/tls/ca.crt" "https://$address/healthz" >/dev/null && return
    sleep 0.05
  done
  echo "the server did not answer within 15 s" >&2
  cat "$work/server.log" >&2
  exit 1
}

serve_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
