#!/usr/bin/env bash
# (b) uutils active -> pacman -U a broken uutils-coreutils -> the hook exits
# non-zero, pacman.log has the reason, the system is on a generation whose
# smoke passes (ls works), status shows degraded, verify is non-zero until a
# good uutils-coreutils is installed again.
. /src/tests/e2e/common.bash
install_all
install_oxidizr
"$OXIDIZR" use uutils

step "pacman -U uutils-coreutils 0.12.0-2 whose uu-ls exits 1"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-2 ls-exit1)" >/tmp/pacman.out 2>&1 || true
cat /tmp/pacman.out
grep -q "error\[E_SMOKE\]" /tmp/pacman.out || fail "the hook did not report E_SMOKE"
grep -q "command failed to execute correctly" /tmp/pacman.out || fail "pacman did not see the hook fail"
grep -q "E_SMOKE" /var/log/pacman.log || fail "pacman.log lacks the reason"
every_applet_resolves
/usr/bin/ls /usr >/dev/null || fail "ls does not work"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls should be GNU while uutils is broken"
"$OXIDIZR" status | tee /tmp/status
grep -q DEGRADED /tmp/status || fail "status does not show degraded"
expect_exit 1 "$OXIDIZR" verify

step "a good uutils-coreutils again"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-3)" 2>&1 | grep oxidizr-arch
expect_exit 0 "$OXIDIZR" verify
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not back on uutils"
