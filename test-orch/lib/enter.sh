#!/usr/bin/env bash
# Runs as PID 1 of a private mount+PID namespace (test-orch/run in_scenario):
# mounts a throwaway overlay of the base root (with OXIDIZR_SCENARIO_FS=ext4:
# a copy of it on a fresh loop-mounted ext4), the API filesystems, the
# repository and the caches, then execs the command chrooted in it.
# Nothing here is visible outside the namespace, and it all vanishes with it.
set -euo pipefail
base=$1 run=$2 repo=$3 mode=$4 cache=$5 artifacts=$6
shift 6
m=$run/merged

if [ "${OXIDIZR_SCENARIO_FS:-overlay}" = ext4 ]; then
    # A root on its own ext4 (a copy of the base): what an Arch machine's /
    # is, without overlayfs's per-operation cost on every create, rename and
    # unlink (the benchmark's root; see docs/PERFORMANCE.md).
    truncate -s 6G "$run/root.ext4"
    mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$run/root.ext4"
    mount -o loop "$run/root.ext4" "$m"
    cp -a "$base/." "$m/"
    sync -f "$m"
else
    mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$m"
fi
mount -t proc proc "$m/proc"
mount --rbind /dev "$m/dev"
mount --make-rslave "$m/dev"
mount -t sysfs sysfs "$m/sys"
mount -t tmpfs -o mode=1777 tmpfs "$m/tmp"

mkdir -p "$m/src" "$m/target" "$m/root/.cargo" "$m/var/cache/oxidizr-pkgs" "$m/artifacts"
mount --bind "$repo" "$m/src"
[ "$mode" = rw ] || mount -o remount,bind,ro "$m/src"
# Build output and the crate registry survive the scenario (warm runs); the
# target dir is per checkout so two clones never share build output.
target="$cache/target-$(printf '%s' "$repo" | sha256sum | cut -c1-12)"
mkdir -p "$target"
mount --bind "$target" "$m/target"
mount --bind "$cache/cargo-home" "$m/root/.cargo"
# Built packages are cached per base root: they are made from its binaries.
pkgs="$cache/pkgs/$(basename "$base")"
mkdir -p "$pkgs"
mount --bind "$pkgs" "$m/var/cache/oxidizr-pkgs"
mount --bind "$artifacts" "$m/artifacts"
rm -f "$m/etc/resolv.conf"
cp -L /etc/resolv.conf "$m/etc/resolv.conf"

exec chroot "$m" /usr/bin/env -i \
    HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TERM="${TERM:-dumb}" LANG=C.UTF-8 CI="${CI:-}" \
    CARGO_TARGET_DIR=/target CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0 \
    OXIDIZR_TESTBED=1 OXIDIZR_PKG_CACHE=/var/cache/oxidizr-pkgs \
    OXIDIZR_UPDATE_GOLDEN="${OXIDIZR_UPDATE_GOLDEN:-}" OXIDIZR_MATRIX_ONLY="${OXIDIZR_MATRIX_ONLY:-}" \
    "$@"
