#!/usr/bin/env bash
# (e) a pre hook that cannot act safely -> pacman aborts, nothing changed.
# The GNU ls kept in the store is deleted by hand: moving ls back to GNU
# before uutils-coreutils goes is impossible, so the pre hook must refuse.
. /src/tests/e2e/common.bash
install_all
install_oxidizr
"$OXIDIZR" use uutils
rm /usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/ls
active_before=$(readlink /usr/lib/oxidizr-arch/active)
find /usr/bin /usr/lib/oxidizr-arch -printf '%p %y %l\n' | sort >/tmp/tree.before

step "pacman -R uutils-coreutils must be aborted by our pre hook"
expect_exit 1 pacman -R --noconfirm uutils-coreutils >/tmp/pacman.out 2>&1
cat /tmp/pacman.out
grep -q "failed to run transaction hooks" /tmp/pacman.out || fail "pacman did not abort on our hook"
# The transition's preflight refuses first, before active moves: without
# the stored GNU ls there is no rescue toolset (no busybox on stock Arch).
grep -q "E_POLICY.*GNU ls is neither at /usr/bin/ls nor in the store" /tmp/pacman.out || fail "no reason given"
pacman -Q uutils-coreutils || fail "uutils-coreutils was removed anyway"
[ "$(readlink /usr/lib/oxidizr-arch/active)" = "$active_before" ] || fail "active moved"
find /usr/bin /usr/lib/oxidizr-arch -printf '%p %y %l\n' | sort >/tmp/tree.after
diff -u /tmp/tree.before /tmp/tree.after || fail "the abort changed files"
[ ! -e /var/lib/pacman/db.lck ] || fail "stale db.lck"
/usr/bin/ls /usr >/dev/null || fail "ls does not work"
