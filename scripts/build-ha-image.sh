#!/usr/bin/env bash
# Build the HA scenario's image without any registry: the bookworm test image (scripts/build-image.sh) with Debian
# 12's own patroni (3.0.2), etcd-server and etcd-client (3.4.23) added in a chroot, then `podman import`. Every unit
# is off until the scenario's prepare writes their files (etcd and Patroni get their TLS before their first start).
# Skipped when the image exists and carries the label of this script's hash and of the base image.
set -euo pipefail
BASE=localhost/pgtls-bookworm:latest
IMAGE=localhost/pgtls-bookworm-ha:latest
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../tests/podman/containers.conf}
stamp=$(sha256sum <"$0" | cut -c1-16)-$(podman image inspect -f '{{ .Id }}' "$BASE" | cut -c1-12)
built=$(podman image inspect -f '{{ index .Labels "pgtls.build" }}' "$IMAGE" 2>/dev/null || true)
[ "$built" != "$stamp" ] || { echo "image $IMAGE is up to date"; exit 0; }
start=$(date +%s)
root=$(mktemp -d /var/tmp/pgtls-rootfs-ha.XXXXXX)
box=pgtls-ha-image-$$
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  podman rm -f "$box" >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap cleanup EXIT
podman create --name "$box" "$BASE" >/dev/null
podman export "$box" | tar --numeric-owner -C "$root" -x  # the image's owners by number, not by this machine's names
cp /etc/resolv.conf "$root/etc/resolv.conf"
# apt uses the mirror debootstrap wrote into the base image's sources.list (scripts/build-image.sh chose it).
mount -t proc proc "$root/proc"
# No service starts in a chroot (policy-rc.d), and none is enabled: prepare decides.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
chroot "$root" apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
  patroni etcd-server etcd-client curl >/dev/null
rm -f "$root/usr/sbin/policy-rc.d"
for unit in etcd patroni postgresql@15-main; do
  chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
umount "$root/proc"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar --numeric-owner -C "$root" -c . | podman import --change "CMD=/sbin/init" --change "LABEL=pgtls.build=$stamp" - "$IMAGE" >/dev/null
echo "built $IMAGE in $(( $(date +%s) - start )) s"
