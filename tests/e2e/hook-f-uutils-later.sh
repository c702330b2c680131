#!/usr/bin/env bash
# (f) use uutils while no uutils package is installed, then pacman -U
# uutils-coreutils -> the post hook switches those applets to uutils.
. /src/tests/e2e/common.bash
pacman_U "$(mkpkg coreutils 9.10-1)" "$(mkpkg findutils 4.11.0-1)" >/dev/null
install_oxidizr
"$OXIDIZR" use uutils | tee /tmp/use.out
grep -q "0 from uutils" /tmp/use.out || fail "nothing should be uutils yet"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls should be GNU"

step "pacman -U uutils-coreutils"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-1)" 2>&1 | tee /tmp/pacman.out
grep -q "oxidizr-arch: profile uutils active" /tmp/pacman.out || fail "no success line"
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls did not switch to uutils"
/usr/bin/find --version | head -1 | grep -q "GNU findutils" || fail "find must stay GNU (no uutils-findutils)"
expect_exit 0 "$OXIDIZR" verify
