#!/usr/bin/env bash
# The demo fleet: three database containers and one application container booting systemd on the podman network
# pgtls-demo (names resolved by aardvark-dns), then demo/demo.yml: site, clients, a verify-full psql session from
# the application container to each database by name with the client certificate, and the audit table.
#   scripts/demo-fleet.sh        start (or re-run against) the fleet
#   scripts/demo-fleet.sh hosts  only start the containers (scripts/bench_fleet.py uses it)
#   scripts/demo-fleet.sh down   remove the containers, the network and the demo CA
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/podman/containers.conf}
IMAGE=${PGTLS_IMAGE:-localhost/pgtls-bookworm:latest}
NETWORK=pgtls-demo
HOSTS=(pgtls-demo-db1 pgtls-demo-db2 pgtls-demo-db3 pgtls-demo-app)

if [ "${1:-up}" = down ]; then
  podman rm -f -t 0 "${HOSTS[@]}" >/dev/null 2>&1 || true
  podman network rm -f "$NETWORK" >/dev/null 2>&1 || true
  rm -rf .cache/demo
  echo "demo fleet removed"
  exit 0
fi

bash scripts/build-image.sh
podman network exists "$NETWORK" || podman network create "$NETWORK" >/dev/null
for name in "${HOSTS[@]}"; do
  if ! podman container exists "$name"; then
    podman run -d --name "$name" --hostname "$name" --network "$NETWORK" --systemd=always "$IMAGE" /sbin/init >/dev/null
  fi
done
[ "${1:-up}" = hosts ] && exit 0
export PGTLS_PKI_DIR="$root/.cache/demo/pki"
export ANSIBLE_COLLECTIONS_PATH="$root/.cache/collections" ANSIBLE_PIPELINING=true
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
"$root/.venv/bin/python" -c "import sys; sys.path.insert(0, 'tests'); import conftest"  # the collection path
start=$(date +%s)
"$root/.venv/bin/ansible-playbook" -i demo/inventory.yml demo/demo.yml
echo "demo fleet converged in $(( $(date +%s) - start )) s; CA in $PGTLS_PKI_DIR; remove it all with: make demo-clean"
