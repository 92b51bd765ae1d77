#!/usr/bin/env bash
# Deletion as fast as creation (issue 18): `berth server` on SQLite with its controllers
# and no node (pods stay pending, so each goes as soon as it is deleted), through the
# load example's `deletion`: a Deployment of PODS pods made, scaled to 0, scaled up
# again and deleted (its pods then go by the garbage collector), and PODS pods created
# in a namespace that is then deleted; each printed as seconds and pods/s.
set -euo pipefail
: "${BERTH:?set by benches/run}" "${LOAD:?set by benches/run}"
source "$(dirname "$0")/lib/server.bash"
pods=${PODS:-10000}
serve deletion --disable-agent --disable-registry
"$LOAD" "$data" "$address" deletion "$pods" | sed 's/^/deletion  /'
