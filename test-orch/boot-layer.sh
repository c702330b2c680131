#!/usr/bin/env bash
# Builds the boot layer: the base root plus systemd as PID 1 (systemd,
# systemd-sysv, dbus), as an overlayfs upper directory over the cached base,
# so the base itself is never written. Boot scenarios (tests/boot/) mount
# it as the middle layer of their throwaway root. See shared/TESTBED.md,
# "Booting systemd".
#
# The cache key of the layer is the sha256 of this file and of the base's
# key: change either and the next boot run rebuilds the layer (~15 s).
#
# Usage: boot-layer.sh BASE DIR   (DIR must not exist; the caller renames it)
set -euo pipefail
base=$1 dest=$2

mkdir -p "$dest/upper" "$dest/work" "$dest/merged"
unshare -m --propagation private -- bash -c '
    set -euo pipefail
    base=$1 dest=$2 m=$2/merged
    mount -t overlay overlay -o "lowerdir=$base,upperdir=$dest/upper,workdir=$dest/work" "$m"
    mount -t proc proc "$m/proc"
    mount --rbind /dev "$m/dev"
    mount --make-rslave "$m/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$m/tmp"
    cp -L /etc/resolv.conf "$m/etc/resolv.conf"
    chroot "$m" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive bash -c "
        set -e
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus >/dev/null
        apt-get clean
        # Every boot gets a fresh machine id (an empty file: systemd makes a
        # transient one); the persistent journal is in /var/log/journal.
        : >/etc/machine-id
        rm -f /var/lib/dbus/machine-id
        mkdir -p /var/log/journal
        # fanotify is refused in the container: this unit costs 2 s a boot.
        systemctl mask xfs_healer_start.service >/dev/null 2>&1 || true
        # No getty on the console: nothing in a boot scenario logs in.
        systemctl mask console-getty.service getty@.service >/dev/null 2>&1 || true
        systemctl --version | head -1
    "
    rm -f "$m/etc/resolv.conf"
' _ "$base" "$dest"
rm -rf "$dest/work" "$dest/merged"
# The layer is the upper directory alone.
mv "$dest/upper" "$dest/layer"
echo "==> boot layer ready ($(du -sh "$dest/layer" | cut -f1))"
