#!/usr/bin/env bash
# Issue 13 item 7: `status` sees drift cheaply. With the post hook masked,
# pacman silently undoes the switch (it writes GNU files over our links);
# status must say DRIFT and exit 1 (it exited 0 and showed the profile as
# active), while a healthy system stays exit 0 with no DRIFT line.
. /src/tests/e2e/common.bash
install_all
install_oxidizr
"$OXIDIZR" use uutils >/dev/null

step "healthy: status exits 0 without a DRIFT line"
expect_exit 0 "$OXIDIZR" status
"$OXIDIZR" status >/tmp/status.txt
grep -q DRIFT /tmp/status.txt && { cat /tmp/status.txt; fail "DRIFT on a healthy system"; }
"$OXIDIZR" status --json | jq -e '(.drift // []) == []' >/dev/null || fail "status --json drift is not empty when healthy"

step "mask the post hook (pacman's /dev/null override) and upgrade coreutils"
hookdir=$(pacman-conf HookDir | head -1)
[ -n "$hookdir" ] || fail "pacman-conf names no HookDir"
mkdir -p "$hookdir"
ln -s /dev/null "$hookdir/90-oxidizr-arch-post.hook"
pacman_U "$(mkpkg coreutils 9.11-1)" >/tmp/pacman.out 2>&1 || { cat /tmp/pacman.out; fail "pacman -U failed"; }
# The premise: the switch really was undone under our feet.
[ -L /usr/bin/ls ] && fail "premise: pacman did not write ls over our link (is the hook really masked?)"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "premise: ls is not GNU after the masked upgrade"

step "status: DRIFT line, exit 1, --json lists the drift"
expect_exit 1 "$OXIDIZR" status
"$OXIDIZR" status >/tmp/status.txt || true
cat /tmp/status.txt
grep -q '^==> DRIFT' /tmp/status.txt || fail "no DRIFT line"
grep -q 'link-foreign' /tmp/status.txt || fail "the DRIFT lines do not name a managed name that is not our link"
"$OXIDIZR" status --json >/tmp/status.json || true
jq -e '.drift | length > 0' /tmp/status.json >/dev/null || fail "status --json has no drift"
expect_exit 1 "$OXIDIZR" verify

step "unmask, repair: status healthy again"
rm "$hookdir/90-oxidizr-arch-post.hook"
"$OXIDIZR" verify --repair >/dev/null
expect_exit 0 "$OXIDIZR" status
"$OXIDIZR" status | grep -q DRIFT && fail "DRIFT after repair"
expect_exit 0 "$OXIDIZR" verify
echo "status-drift: ok"
