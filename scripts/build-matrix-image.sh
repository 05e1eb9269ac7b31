#!/usr/bin/env bash
# Build one image of the CI matrix without any registry: debootstrap (minbase) a Debian release with systemd,
# its own PostgreSQL and its own python3-cryptography, then `podman import`. Skipped when the image exists and
# carries the label of this script's hash and the release (built once, cached by that label).
#   bullseye: Debian 11, PostgreSQL 13, python3-cryptography 3.3.2; libjson-perl deliberately NOT installed
#             (postgresql-common only suggests it, so `pg_lsclusters --json` fails as on a stock host)
#   trixie:   Debian 13, PostgreSQL 17, python3-cryptography 43
# The mirror is the one this machine's apt uses (as scripts/build-image.sh does).
set -euo pipefail
release=${1:?usage: build-matrix-image.sh bullseye|trixie}
case "$release" in
  bullseye) pg=13 ;;
  trixie) pg=17 ;;
  *) echo "unknown release $release" >&2; exit 2 ;;
esac
IMAGE=localhost/pgtls-$release:latest
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../tests/podman/containers.conf}
stamp=$(sha256sum <"$0" | cut -c1-16)-$release
if podman image exists "$IMAGE" && [ "$(podman image inspect -f '{{ index .Labels "pgtls.build" }}' "$IMAGE" 2>/dev/null)" = "$stamp" ]; then
  echo "image $IMAGE is up to date"
  exit 0
fi
MIRROR=${PGTLS_DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -rhoE '^(deb|URIs:) +\S+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
           | awk '{print $2}' | grep -E '^https?://[^ ]+/debian/?$' | head -n1 || true)
fi
[ -n "$MIRROR" ] || { echo "no Debian mirror in this machine's apt sources; set PGTLS_DEBIAN_MIRROR" >&2; exit 1; }
root=$(mktemp -d "/var/tmp/pgtls-rootfs-$release.XXXXXX")
trap 'rm -rf "$root" "$root.log"' EXIT
start=$(date +%s)
echo "debootstrap $release from $MIRROR into $root"
debootstrap --variant=minbase \
  --include=python3,python3-cffi-backend,python3-cryptography,postgresql-$pg,postgresql-client-$pg,ssl-cert,systemd,systemd-sysv,sudo,openssl,procps,iproute2 \
  "$release" "$root" "$MIRROR" >"$root.log" 2>&1 || {
    echo "debootstrap failed:"; tail -n 20 "$root.log"; tail -n 20 "$root/debootstrap/debootstrap.log" 2>/dev/null; exit 1; }
# debootstrap's resolver pulls libjson-perl in on bullseye, where postgresql-common only suggests it: take it out
# (dpkg refuses if anything really depends on it), so `pg_lsclusters --json` fails as on a stock Debian 11 host.
# shellcheck disable=SC2016  # ${Status}, ${Package}...: dpkg-query's format fields, not shell expansions
if [ "$release" = bullseye ] && chroot "$root" dpkg-query -W -f='${Status}' libjson-perl 2>/dev/null | grep -q installed; then
  chroot "$root" dpkg --purge libjson-perl >/dev/null || {
    echo "libjson-perl cannot be removed; reverse dependencies:" >&2
    chroot "$root" dpkg-query -W -f='${Package} ${Depends} ${Pre-Depends}\n' | grep -w libjson-perl >&2; exit 1; }
  if chroot "$root" perl -MJSON -e 1 2>/dev/null; then echo "JSON.pm is still there" >&2; exit 1; fi
fi
chroot "$root" systemctl enable "postgresql@$pg-main" >/dev/null 2>&1 || true
for unit in systemd-resolved systemd-timesyncd getty@tty1 console-getty; do
  chroot "$root" systemctl mask "$unit" >/dev/null 2>&1 || true
done
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change "CMD=/sbin/init" --change "LABEL=pgtls.build=$stamp" - "$IMAGE" >/dev/null
echo "built $IMAGE in $(( $(date +%s) - start )) s"
