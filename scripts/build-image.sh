#!/usr/bin/env bash
# Build the test-host image without any registry: debootstrap Debian bookworm (minbase) with systemd,
# PostgreSQL 15, python3-cryptography, ssl-cert and sudo (and the extras below), then `podman import`. Skipped when the image exists
# and this script has not changed since (its hash is a label on the image).
set -euo pipefail
IMAGE=${PGTLS_IMAGE:-localhost/pgtls-bookworm:latest}
MIRROR=${PGTLS_DEBIAN_MIRROR:-}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../tests/podman/containers.conf}
stamp=$(sha256sum "$0" | cut -c1-16)
if podman image exists "$IMAGE" && [ "$(podman image inspect -f '{{ index .Labels "pgtls.build" }}' "$IMAGE" 2>/dev/null)" = "$stamp" ]; then
  echo "image $IMAGE is up to date"
  exit 0
fi
if [ -z "$MIRROR" ]; then
  # Use the mirror this machine's apt already uses.
  MIRROR=$(grep -rhoE '^(deb|URIs:) +\S+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
           | awk '{print $2}' | grep -E '^https?://[^ ]+/debian/?$' | head -n1 || true)
  if [ -z "$MIRROR" ]; then
    echo "no Debian mirror in this machine's apt sources: set PGTLS_DEBIAN_MIRROR to one" >&2
    exit 1
  fi
fi
root=$(mktemp -d /var/tmp/pgtls-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $MIRROR into $root"
debootstrap --variant=minbase \
  --include=python3,python3-cffi-backend,python3-cryptography,postgresql-15,postgresql-client-15,ssl-cert,systemd,systemd-sysv,sudo,openssl,procps,iproute2,pgbouncer,openssh-server,default-jre-headless,libpostgresql-jdbc-java,python3-asyncpg,python3-psycopg,nodejs \
  bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || {
    echo "debootstrap failed:"; tail -n 20 "$root.log"; tail -n 20 "$root/debootstrap/debootstrap.log" 2>/dev/null; exit 1; }
rm -f "$root.log"
# No cluster from the package's postinst: the role and tests decide what exists. Keep the default
# 15/main cluster created by postgresql-common, but let systemd start it on boot.
chroot "$root" systemctl enable postgresql@15-main >/dev/null 2>&1 || true
# PgBouncer (the pgbouncer role's tests) and sshd (the SSH benchmark) are installed but off until a test turns
# them on. The application drivers (JDBC with a JRE, psycopg 3, asyncpg, Node.js) are there for the fleet's tests.
for unit in pgbouncer ssh; do
  chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
# Quieter boots in containers.
for unit in systemd-resolved systemd-timesyncd getty@tty1 console-getty; do
  chroot "$root" systemctl mask "$unit" >/dev/null 2>&1 || true
done
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change "CMD=/sbin/init" --change "LABEL=pgtls.build=$stamp" - "$IMAGE" >/dev/null
echo "built $IMAGE"
