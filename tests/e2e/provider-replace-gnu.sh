#!/usr/bin/env bash
# A package that replaces GNU coreutils itself (issue 12 item 4): an AUR
# -git build that provides coreutils and uutils-coreutils, conflicts with
# both, and ships unprefixed commands (/usr/bin/ls). Installing it under the
# uutils profile makes pacman remove coreutils and uutils-coreutils in the
# same transaction. Our pre-remove hook must put GNU's pristine files back
# before pacman removes them (pacman removes exactly what it installed),
# say so in one line, and leave the coreutils family unmanaged: no sidecar,
# no link of ours, nothing dangling, nothing resurrected afterwards, the
# provider never taken for GNU. findutils stays managed.
. /src/tests/e2e/common.bash

install_all
install_oxidizr
"$OXIDIZR" use uutils >/dev/null
ql_bin coreutils >/tmp/coreutils.applets
[ "$(readlink /usr/lib/oxidizr-arch/active/bin/ls)" = /usr/bin/uu-ls ] || fail "ls is not uutils before the replacement"

# Probe: after our pre-remove hook (50- sorts after 10-), every coreutils
# command is GNU's regular file again: what pacman is about to remove is
# what it installed, not our link.
cat >/usr/local/bin/oxidizr-probe <<'PROBE'
#!/bin/bash
echo ran >>/var/tmp/probe-ran
while IFS= read -r a; do
    if [ -L "/usr/bin/$a" ] || [ ! -f "/usr/bin/$a" ]; then
        echo "/usr/bin/$a is not GNU's file before pacman removes coreutils: $(ls -l "/usr/bin/$a" 2>&1)" >>/var/tmp/probe-failures
    fi
done </tmp/coreutils.applets
PROBE
chmod 755 /usr/local/bin/oxidizr-probe
cat >/usr/share/libalpm/hooks/50-probe-pre.hook <<'HOOK'
[Trigger]
Operation = Remove
Type = Package
Target = coreutils
[Action]
When = PreTransaction
Exec = /usr/local/bin/oxidizr-probe
HOOK

step "pacman -U uutils-coreutils-git (provides+conflicts coreutils, uutils-coreutils; unprefixed commands)"
pkg=$(
    export MKPKG_NAME=uutils-coreutils-git MKPKG_PREFIX='' \
        MKPKG_PROVIDES="coreutils=9.10 uutils-coreutils=0.13.0" MKPKG_CONFLICTS="coreutils uutils-coreutils"
    mkpkg uutils-coreutils 0.13.0.r1-1
)
# --ask 4 answers "remove the conflicting package?" with yes, as an admin would.
pacman -U --noconfirm --ask 4 --overwrite '*' "$pkg" 2>&1 | tee /tmp/replace.out
# By exact name: `pacman -Q coreutils` would answer with a package that provides it.
installed() { local all; all=$(pacman -Qq); grep -qx -- "$1" <<<"$all"; }
installed coreutils && fail "pacman did not remove coreutils"
installed uutils-coreutils && fail "pacman did not remove uutils-coreutils"
installed uutils-coreutils-git || fail "uutils-coreutils-git is not installed"
[ -s /var/tmp/probe-ran ] || fail "the probe hook did not run: the Remove PreTransaction hooks did not fire"
if [ -s /var/tmp/probe-failures ]; then head -5 /var/tmp/probe-failures; fail "coreutils commands were not GNU's files when pacman removed coreutils"; fi
grep -q "command failed" /tmp/replace.out && fail "a hook failed"
grep -E "oxidizr-arch: .*coreutils.*(no longer managed)" /tmp/replace.out || fail "no clear line that the coreutils family is no longer managed"
[ "$(grep -c 'no longer managed' /tmp/replace.out)" = 1 ] || fail "expected exactly one line about the unmanaged family"

step "afterwards: coreutils unmanaged, nothing of ours left at its names, nothing resurrected or dangling"
while IFS= read -r a; do
    [ ! -e "/var/lib/oxidizr-arch/sidecars/$a.json" ] || fail "a sidecar for /usr/bin/$a remains"
    if [ -L "/usr/bin/$a" ] || [ -e "/usr/bin/$a" ]; then
        case $(readlink "/usr/bin/$a") in /usr/lib/oxidizr-arch/*) fail "/usr/bin/$a is still our link" ;; esac
        owner=$(pacman -Qoq "/usr/bin/$a" 2>/dev/null) || fail "/usr/bin/$a exists but no package owns it (resurrected GNU file?)"
        [ "$owner" = uutils-coreutils-git ] || fail "/usr/bin/$a is owned by $owner"
    fi
done </tmp/coreutils.applets
dangling=$(find /usr/bin -maxdepth 1 -xtype l)
[ -z "$dangling" ] || fail "dangling entries in /usr/bin: $dangling"
pacman -Qkk uutils-coreutils-git >/tmp/qkk.out 2>&1 || { cat /tmp/qkk.out; fail "pacman -Qkk uutils-coreutils-git is not clean"; }
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "/usr/bin/ls is not the replacement's own ls"
"$OXIDIZR" status | tee /tmp/status.out
grep -q "==> coreutils: coreutils not installed" /tmp/status.out || fail "status takes the provider of 'coreutils' for GNU coreutils"
[ "$(readlink /usr/bin/find)" = /usr/lib/oxidizr-arch/active/bin/find ] || fail "findutils is no longer managed"
[ "$(readlink /usr/lib/oxidizr-arch/active/bin/find)" = /usr/bin/uu-find ] || fail "find is not uutils any more"
/usr/bin/find /usr/bin -maxdepth 0 >/dev/null || fail "find does not run"
expect_exit 0 "$OXIDIZR" verify

step "a later transaction keeps it so"
pacman_U "$(mkpkg findutils 4.11.0-2)" 2>&1 | tee /tmp/later.out
grep -q "command failed" /tmp/later.out && fail "the post hook failed"
while IFS= read -r a; do
    [ ! -e "/var/lib/oxidizr-arch/sidecars/$a.json" ] || fail "a sidecar for /usr/bin/$a came back"
done </tmp/coreutils.applets
expect_exit 0 "$OXIDIZR" verify
echo "replace-GNU: pristine files back before pacman removed them, coreutils unmanaged, nothing lost or dangling"
