#!/usr/bin/env bash
# Provider packages (issue 12 item 4): the AUR's uutils-coreutils-bin is not
# named uutils-coreutils; it provides it (and conflicts with it), with the
# same uu-* layout. With the real hook files (pacman matches Target against
# package names only, never provides), it goes through:
#   install -> use uutils (its applets switch) -> upgrade under a concurrent
#   observer executing managed commands (0 failed executions; the pre-upgrade
#   hook moved them to GNU while pacman rewrote uu-*) -> removal (back on
#   GNU, nothing dangling).
. /src/tests/e2e/common.bash

# bin_pkg VERSION: uutils-coreutils-bin, as the AUR's PKGBUILD declares it.
bin_pkg() {
    (
        export MKPKG_NAME=uutils-coreutils-bin MKPKG_PROVIDES="uutils-coreutils=${1%-*}" MKPKG_CONFLICTS=uutils-coreutils
        mkpkg uutils-coreutils "$1"
    )
}
# uu_source APPLET: the target of the active generation's link for APPLET.
uu_source() { readlink "/usr/lib/oxidizr-arch/active/bin/$1"; }

step "install coreutils, findutils, uutils-findutils, oxidizr-arch (no busybox, as on stock Arch)"
pacman_U "$(mkpkg coreutils 9.10-1)" "$(mkpkg findutils 4.11.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null
install_oxidizr

step "pacman -U uutils-coreutils-bin 0.12.0-1 (provides uutils-coreutils)"
pacman_U "$(bin_pkg 0.12.0-1)" 2>&1 | tee /tmp/install.out
pacman -Qi uutils-coreutils-bin | grep -q '^Provides *: uutils-coreutils=0.12.0' || fail "the package does not provide uutils-coreutils"
[ "$(pacman -Qlq uutils-coreutils-bin | grep -c '^/usr/bin/uu-')" -gt 50 ] || fail "uutils-coreutils-bin ships no uu-* commands"

step "oxidizr-hook use uutils: the provider's applets switch"
"$OXIDIZR" use uutils | tee /tmp/use.out
[ "$(uu_source ls)" = /usr/bin/uu-ls ] || fail "ls is not backed by the provider's uu-ls: $(uu_source ls)"
[ "$(uu_source cat)" = /usr/bin/uu-cat ] || fail "cat is not backed by the provider's uu-cat: $(uu_source cat)"
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "/usr/bin/ls is not uutils after use uutils"
"$OXIDIZR" status | tee /tmp/status.out
grep -q "uutils-coreutils-bin 0.12.0-1" /tmp/status.out || fail "status does not name uutils-coreutils-bin"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "upgrade uutils-coreutils-bin under a concurrent observer"
# Probe hooks: after our pre hook (50- sorts after 10-), every applet the
# provider backed must be on GNU while pacman rewrites uu-*; both probes
# record how many observer rounds had run, to prove the observer ran
# through the extraction.
cat >/usr/local/bin/oxidizr-probe <<'PROBE'
#!/bin/bash
mapfile -t rounds </var/tmp/observer.rounds 2>/dev/null || rounds=()
echo "$1 ${#rounds[@]}" >>/var/tmp/probes
if [ "$1" = pre ]; then
    t=$(readlink /usr/lib/oxidizr-arch/active/bin/ls)
    case $t in /usr/bin/uu-*) echo "pre: ls still backed by $t during the upgrade" >>/var/tmp/probe-failures ;; esac
fi
PROBE
chmod 755 /usr/local/bin/oxidizr-probe
for when in PreTransaction PostTransaction; do
    name=$([ $when = PreTransaction ] && echo 50-probe-pre || echo 00-probe-post)
    arg=$([ $when = PreTransaction ] && echo pre || echo post)
    cat >/usr/share/libalpm/hooks/$name.hook <<HOOK
[Trigger]
Operation = Upgrade
Type = Package
Target = uutils-coreutils-bin
[Action]
When = $when
Exec = /usr/local/bin/oxidizr-probe $arg
HOOK
done

# The observer: managed commands by their /usr/bin paths, in a loop, each
# one's failure recorded (exit status, or 126/127 when it cannot execute).
observer() {
    local c
    : >/var/tmp/observer.rounds
    while [ ! -e /var/tmp/observer.stop ]; do
        for c in "ls /" "cat /etc/os-release" "true" "basename /a/b" "dirname /a/b" "wc -c /etc/os-release" \
                 "head -n1 /etc/os-release" "sort /etc/os-release" "echo x" "readlink /proc/self/exe" \
                 "stat /" "uname" "id -u" "env true" "[ 1 = 1 ]" "test -d /" "printf x" "date +%s"; do
            # shellcheck disable=SC2086
            /usr/bin/$c >/dev/null 2>&1 || echo "/usr/bin/$c exited $?" >>/var/tmp/observer.failed
        done
        echo round >>/var/tmp/observer.rounds
    done
}
observer &
obs=$!
for _ in $(seq 100); do [ -s /var/tmp/observer.rounds ] && break; sleep 0.05; done
[ -s /var/tmp/observer.rounds ] || fail "the observer did not start"
pacman_U "$(bin_pkg 0.12.0-2)" 2>&1 | tee /tmp/upgrade.out || { touch /var/tmp/observer.stop; fail "pacman -U failed"; }
touch /var/tmp/observer.stop
wait "$obs"
rm /usr/share/libalpm/hooks/50-probe-pre.hook /usr/share/libalpm/hooks/00-probe-post.hook
rounds=$(wc -l </var/tmp/observer.rounds)
echo "observer: $rounds rounds of 18 commands, $(cat 2>/dev/null /var/tmp/observer.failed | wc -l) failed"
cat /var/tmp/probes
[ "$(wc -l </var/tmp/probes)" = 2 ] || fail "the probe hooks did not both run (the upgrade did not run its hooks)"
if [ -s /var/tmp/probe-failures ]; then cat /var/tmp/probe-failures; fail "applets stayed on the provider's uu-* during its upgrade"; fi
if [ -s /var/tmp/observer.failed ]; then sort /var/tmp/observer.failed | uniq -c | head -20; fail "the observer saw failed executions"; fi
pre=$(sed -n 's/^pre //p' /var/tmp/probes); post=$(sed -n 's/^post //p' /var/tmp/probes)
[ "$post" -gt "$pre" ] || fail "the observer ran no round between the pre and post probes ($pre, $post)"
grep -q "moved to GNU for the upgrade" /tmp/upgrade.out || fail "the pre-upgrade hook did not move the provider's applets to GNU"
grep -q "oxidizr-arch: profile uutils active: generation" /tmp/upgrade.out || fail "the post hook did not switch back"
grep -q "command failed" /tmp/upgrade.out && fail "a hook failed during the upgrade"
[ "$(uu_source ls)" = /usr/bin/uu-ls ] || fail "ls is not back on the provider after its upgrade: $(uu_source ls)"
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "/usr/bin/ls is not uutils after the upgrade"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "pacman -R uutils-coreutils-bin: back on GNU, nothing dangling"
pacman -R --noconfirm uutils-coreutils-bin 2>&1 | tee /tmp/remove.out
grep -q "moved to GNU for the removal" /tmp/remove.out || fail "the pre-remove hook did not move the provider's applets to GNU"
grep -q "command failed" /tmp/remove.out && fail "a hook failed during the removal"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU after the removal"
case $(uu_source ls) in /usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/ls) ;; *) fail "ls is not GNU's stored file: $(uu_source ls)" ;; esac
[ "$(uu_source find)" = /usr/bin/uu-find ] || fail "find should stay uutils (uutils-findutils stays)"
every_applet_resolves
dangling=$(find /usr/bin -maxdepth 1 -xtype l)
[ -z "$dangling" ] || fail "dangling entries in /usr/bin: $dangling"
expect_exit 0 "$OXIDIZR" verify

step "switching providers through the conflict: uutils-coreutils active, then uutils-coreutils-bin replaces it"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-1)" >/dev/null
[ "$(uu_source ls)" = /usr/bin/uu-ls ] || fail "ls did not switch to uutils-coreutils"
# --ask 4: "remove the conflicting uutils-coreutils?" yes, as an admin answers.
pacman -U --noconfirm --ask 4 --overwrite '*' "$(bin_pkg 0.12.0-2)" 2>&1 | tee /tmp/switch.out
grep -q "moved to GNU for the removal" /tmp/switch.out || fail "the pre-remove hook did not move uutils-coreutils' applets to GNU"
grep -q "oxidizr-arch: profile uutils active: generation" /tmp/switch.out || fail "the post hook did not switch to the new provider"
grep -q "command failed" /tmp/switch.out && fail "a hook failed during the switch"
"$OXIDIZR" status --json >/tmp/status.json
grep -q '"package": "uutils-coreutils-bin"' /tmp/status.json || fail "status does not list uutils-coreutils-bin"
grep -q '"provides": "uutils-coreutils"' /tmp/status.json || fail "status does not say what uutils-coreutils-bin stands in for"
grep -q '"package": "uutils-coreutils-bin"' "/usr/lib/oxidizr-arch/active/manifest.json" || fail "the active generation does not use uutils-coreutils-bin"
[ "$(uu_source ls)" = /usr/bin/uu-ls ] || fail "ls is not uutils after the switch: $(uu_source ls)"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify
echo "provider packages: install, use, upgrade under observation, removal and a provider switch all kept every command working"
