# Sourced by every boot scenario (tests/boot/NAME.sh), which runs on the
# host side inside the private mount+PID namespace of
# test-orch/lib/boot-enter.sh, with $BOOT_ROOT the scenario's throwaway root
# (base + boot layer + its own upper). What it offers:
#
#   in_root CMD...      CMD chrooted in the root (not booted), with /proc,
#                       /dev, /sys, /tmp, /src (read-only), /artifacts and
#                       the package cache mounted in a namespace of its own:
#                       the root itself stays free of mounts for nspawn.
#   boot_check NAME     boots the root with systemd as PID 1
#                       (systemd-nspawn), runs the check script read from
#                       stdin once the boot has finished, powers off and
#                       returns the check's exit status; its output is
#                       printed. One call = one boot: batch the checks.
#   journal ARGS...     the root's persistent journal, read by the guest's
#                       own journalctl (after a boot, with the root at rest).
#
# Never binds a host device node into the guest (its systemd would chown
# and chmod it on the host): nspawn makes the guest's /dev itself.
set -euo pipefail

step() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

: "${BOOT_ROOT:?boot.bash runs under test-orch/lib/boot-enter.sh}"
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
boot_count=0

in_root() {
    unshare -m --propagation private -- bash -c '
        set -euo pipefail
        m=$1; shift
        mount -t proc proc "$m/proc"
        mount --rbind /dev "$m/dev"
        mount --make-rslave "$m/dev"
        mount -t sysfs sysfs "$m/sys"
        mount -t tmpfs -o mode=1777 tmpfs "$m/tmp"
        mkdir -p "$m/src" "$m/artifacts" "$m/var/cache/oxidizr-pkgs"
        mount --bind "$BOOT_REPO" "$m/src"
        mount -o remount,bind,ro "$m/src"
        mount --bind "$BOOT_ARTIFACTS" "$m/artifacts"
        pkgs="$BOOT_CACHE/pkgs/$(basename "$BOOT_BASE")"
        mkdir -p "$pkgs"
        mount --bind "$pkgs" "$m/var/cache/oxidizr-pkgs"
        exec chroot "$m" /usr/bin/env -i \
            HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            TERM=dumb LANG=C.UTF-8 OXIDIZR_TESTBED=1 OXIDIZR_PKG_CACHE=/var/cache/oxidizr-pkgs \
            "$@"' _ "$BOOT_ROOT" "$@"
}

# The unit that runs a boot's check once the boot has finished. Type=exec
# and ordered after multi-user.target: it waits for the whole boot
# (`is-system-running --wait`; a oneshot in the boot transaction would
# never see it end), runs the check, records its status, powers off.
boot_install_check_unit() {
    local r=$BOOT_ROOT
    mkdir -p "$r/var/lib/oxidizr-test" "$r/usr/local/libexec" "$r/etc/systemd/system/multi-user.target.wants"
    cat >"$r/usr/local/libexec/oxidizr-test-check" <<'EOS'
#!/bin/bash
d=/var/lib/oxidizr-test
systemctl is-system-running --wait >"$d/system-state" 2>&1
systemd-analyze time >"$d/boot-time" 2>&1
rc=0
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin bash -u "$d/check.sh" >"$d/check.log" 2>&1 || rc=$?
echo "$rc" >"$d/check.rc"
sync
systemctl poweroff --no-block
EOS
    chmod 0755 "$r/usr/local/libexec/oxidizr-test-check"
    cat >"$r/etc/systemd/system/oxidizr-test-check.service" <<'EOS'
[Unit]
Description=testbed: the boot scenario's check, then power off
After=multi-user.target

[Service]
Type=exec
ExecStart=/usr/local/libexec/oxidizr-test-check
StandardOutput=journal+console
EOS
    ln -sf ../oxidizr-test-check.service "$r/etc/systemd/system/multi-user.target.wants/oxidizr-test-check.service"
}

# A cgroup of our own in both hierarchies nspawn uses here (shared/TESTBED.md).
boot_cgroups() { printf '%s\n' /sys/fs/cgroup/unified/"$1" /sys/fs/cgroup/systemd/"$1"; }

# boot_reap_cgroups NAME: kills what is left in the cgroups (nothing after a
# clean poweroff) and removes them depth-first.
boot_reap_cgroups() {
    local cg p
    for cg in $(boot_cgroups "$1"); do
        [ -d "$cg" ] || continue
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || { sleep 0.5; find "$cg" -depth -type d -exec rmdir {} +; }
    done
}

boot_check() {
    local name=$1 r=$BOOT_ROOT d=$BOOT_ROOT/var/lib/oxidizr-test
    boot_count=$((boot_count + 1))
    [ -x "$r/usr/local/libexec/oxidizr-test-check" ] || boot_install_check_unit
    cat >"$d/check.sh"
    rm -f "$d/check.rc" "$d/check.log" "$d/system-state" "$d/boot-time"
    local cg
    cg="oxidizr-boot-$(basename "$BOOT_RUN")-$boot_count"
    local c
    for c in $(boot_cgroups "$cg"); do mkdir "$c"; done
    local console=$BOOT_RUN/console-$boot_count.log st=0 t0 t1
    step "boot $boot_count: $name"
    t0=$(date +%s%N)
    timeout -k 5 "$BOOT_TIMEOUT" env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 bash -c '
        for c in "$@"; do echo $$ >"$c/cgroup.procs"; done
        exec systemd-nspawn --quiet -D "$BOOT_ROOT" --boot --register=no --keep-unit \
            --private-network --console=pipe --link-journal=no --resolv-conf=off --timezone=off' \
        _ $(boot_cgroups "$cg") >"$console" 2>&1 </dev/null || st=$?
    t1=$(date +%s%N)
    boot_reap_cgroups "$cg"
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    printf '    boot %d cycle (boot, check, poweroff): %s s; %s\n' "$boot_count" "$secs" \
        "$(sed -n 's/^Startup finished in //p' "$d/boot-time" 2>/dev/null | head -1)"
    printf '%s %s %s %s\n' "${BOOT_SCENARIO:-?}" "$boot_count" "$secs" \
        "$(sed -n 's/.*multi-user.target reached after \([0-9.]*\(ms\|s\)\).*/\1/p' "$d/boot-time" 2>/dev/null | head -1)" \
        >>"$BOOT_ARTIFACTS/boot-times"
    [ -f "$d/check.log" ] && sed 's/^/    | /' "$d/check.log"
    if [ "$st" != 0 ] || [ ! -f "$d/check.rc" ]; then
        sed 's/^/    console| /' "$console" | tail -40
        fail "boot $boot_count ($name): nspawn exited $st, the check $( [ -f "$d/check.rc" ] && echo ran || echo 'never ran')"
    fi
    printf '    system state after boot: %s\n' "$(cat "$d/system-state")"
    return "$(cat "$d/check.rc")"
}

journal() { in_root journalctl -D /var/log/journal --no-pager "$@"; }
