#!/usr/bin/env bash
# Runs as PID 1 of a private mount+PID namespace (test-orch/run
# in_boot_scenario): mounts a throwaway overlay of the boot layer over the
# base root and runs a boot scenario (tests/boot/NAME.sh) on the host side,
# with test-orch/lib/boot.bash: the scenario prepares the root chrooted
# (in_root) and boots it with systemd-nspawn (boot_check). Nothing is
# mounted inside the root itself (nspawn boots it as it is); every mount
# here vanishes with the namespace.
set -euo pipefail
base=$1 layer=$2 run=$3 repo=$4 cache=$5 artifacts=$6 scenario=$7
m=$run/merged
# This namespace's own /proc: nspawn finds its child's namespaces by pid.
mount -t proc proc /proc
mkdir -p "$run/upper" "$run/work" "$m"
mount -t overlay overlay -o "lowerdir=$layer/layer:$base,upperdir=$run/upper,workdir=$run/work" "$m"
# nspawn keeps its state in /run/systemd/nspawn and refuses a /run that is
# not a tmpfs: a private one, in this namespace only.
mkdir -p /run/systemd/nspawn
mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
export BOOT_ROOT=$m BOOT_RUN=$run BOOT_REPO=$repo BOOT_CACHE=$cache BOOT_ARTIFACTS=$artifacts
export BOOT_BASE=$base
exec bash -c '. "$1"/test-orch/lib/boot.bash; . "$2"' _ "$repo" "$scenario"
