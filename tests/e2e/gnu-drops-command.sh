#!/usr/bin/env bash
# Issue 12 item 6: a command the GNU package stops shipping stays absent
# after the upgrade (pacman removed it with the old file list): its sidecar
# is dropped and a fact says so; `disable` does not bring it back; a package
# that ships the name later installs without "exists in filesystem".
. /src/tests/e2e/common.bash
facts=/var/log/oxidizr-arch/facts.jsonl
old=$(MKPKG_EXTRA_BIN="oldtool=/opt/oxidizr-testbed/gnu/true" mkpkg coreutils 9.10-1)
pacman_U "$old" "$(mkpkg findutils 4.11.0-1)" "$(mkpkg uutils-coreutils 0.12.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null
install_oxidizr
[ -f /usr/bin/oldtool ] || fail "precondition: coreutils 9.10-1 ships oldtool"
"$OXIDIZR" use uutils >/dev/null
[ "$(readlink /usr/bin/oldtool)" = /usr/lib/oxidizr-arch/active/bin/oldtool ] || fail "precondition: oldtool is managed"

step "pacman -U coreutils 9.11-1, which no longer ships oldtool"
pacman_U "$(mkpkg coreutils 9.11-1)" >/tmp/pacman.out 2>&1
grep -q "command failed" /tmp/pacman.out && { cat /tmp/pacman.out; fail "the post hook failed"; }
[ ! -e /usr/bin/oldtool ] && [ ! -L /usr/bin/oldtool ] || fail "/usr/bin/oldtool came back: $(ls -l /usr/bin/oldtool)"
[ ! -e /var/lib/oxidizr-arch/sidecars/oldtool.json ] || fail "the sidecar of oldtool remains"
grep '"stage":"drop"' $facts | grep -q '/usr/bin/oldtool (coreutils 9.11-1 does not ship it)' \
    || fail "no fact says oldtool was dropped: $(grep '"stage":"drop"' $facts)"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "a package that ships the name installs without a file conflict"
pacman_U "$(MKPKG_EXTRA_BIN="oldtool=/opt/oxidizr-testbed/gnu/true" mkpkg findutils 4.11.0-2)" >/tmp/pacman2.out 2>&1 \
    || { cat /tmp/pacman2.out; fail "pacman refused the package that ships oldtool"; }
grep -q "exists in filesystem" /tmp/pacman2.out && fail "file conflict on oldtool"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "disable: every name back to pacman's files, pacman -Qkk clean"
"$OXIDIZR" disable >/dev/null
[ -f /usr/bin/oldtool ] && [ ! -L /usr/bin/oldtool ] || fail "oldtool is not findutils' file after disable"
pacman -Qkk coreutils findutils >/tmp/qkk.out 2>&1 || { cat /tmp/qkk.out; fail "pacman -Qkk is not clean after disable"; }
step "ok"
