#!/usr/bin/env bash
# Issue 13 item 2 (DESIGN.md §10): `rollback` goes to the newest good
# generation older than the active one, each time further back, until a
# clear E_POLICY "nothing older"; the rolled-back generation is held (status
# and verify say so, verify does not call it damage) until the next package
# change, which says in one line that it released it. A rollback whose
# target fails its live smoke runs the rollback chain: every command still
# resolves, the state is degraded, exit E_SMOKE.
. /src/tests/e2e/common.bash
lib=/usr/lib/oxidizr-arch
active() { local a; a=$(readlink $lib/active); echo "${a#generations/}"; }
# hooked_U PKG: pacman -U with the real hooks; the post hook must succeed.
hooked_U() {
    pacman_U "$1" >/tmp/hooked.out 2>&1 || { cat /tmp/hooked.out; fail "pacman -U $1 failed"; }
    ! grep -q "command failed" /tmp/hooked.out || { cat /tmp/hooked.out; fail "the hook failed on $1"; }
}
install_all
install_oxidizr
"$OXIDIZR" use uutils >/dev/null
g1=$(active)
hooked_U "$(mkpkg coreutils 9.11-1)"
g2=$(active)
hooked_U "$(mkpkg coreutils 9.12-1)"
g3=$(active)
[ "$g1" -lt "$g2" ] && [ "$g2" -lt "$g3" ] || fail "setup: generations $g1 $g2 $g3"

step "rollback: $g3 -> $g2 -> $g1, never forward"
"$OXIDIZR" rollback | tee /tmp/rb.out
[ "$(active)" = "$g2" ] || fail "first rollback went to $(active), not $g2"
grep -q "held" /tmp/rb.out || fail "rollback does not say the generation is held"
every_applet_resolves
"$OXIDIZR" verify >/tmp/verify.out 2>&1 || { cat /tmp/verify.out; fail "verify calls a held rollback damage"; }
grep -q "held" /tmp/verify.out || { cat /tmp/verify.out; fail "verify does not report the hold"; }
"$OXIDIZR" status | grep -q "held: generation $g2" || fail "status does not show the hold"
"$OXIDIZR" rollback >/dev/null
[ "$(active)" = "$g1" ] || fail "second rollback went to $(active), not $g1"
expect_exit 0 "$OXIDIZR" verify
st=0; "$OXIDIZR" rollback >/tmp/rb3.out 2>&1 || st=$?
[ $st = 10 ] || { cat /tmp/rb3.out; fail "a third rollback exited $st, not 10 (E_POLICY)"; }
grep -q "nothing older to roll back to" /tmp/rb3.out || { cat /tmp/rb3.out; fail "no 'nothing older' reason"; }
[ "$(active)" = "$g1" ] || fail "the refused rollback moved active"
every_applet_resolves

step "the next package change releases the hold, in one line"
pacman_U "$(mkpkg coreutils 9.13-1)" >/tmp/pacman.out 2>&1
grep -q "command failed" /tmp/pacman.out && { cat /tmp/pacman.out; fail "the post hook failed"; }
grep -q "released the rollback to generation $g1" /tmp/pacman.out || { cat /tmp/pacman.out; fail "the hook did not say it released the hold"; }
[ "$(active)" -gt "$g3" ] || fail "the hook did not build a new generation"
"$OXIDIZR" status | grep -q "held:" && fail "status still shows a hold"
expect_exit 0 "$OXIDIZR" verify

step "a rollback target whose uutils binary is gone: the chain puts the previous generation back"
pacman -R --noconfirm uutils-findutils >/tmp/pacman.out 2>&1 || { cat /tmp/pacman.out; fail "cannot remove uutils-findutils"; }
[ ! -e /usr/bin/uu-find ] || fail "precondition: uu-find is gone"
before=$(active)
st=0
for i in 1 2 3 4; do
    before=$(active)
    "$OXIDIZR" rollback >/tmp/rb.out 2>&1 || { st=$?; break; }
done
[ $st = 80 ] || { cat /tmp/rb.out; fail "rolling back onto a generation without uu-find exited $st, not 80 (E_SMOKE)"; }
grep -q "rolled back to generation $before" /tmp/rb.out || { cat /tmp/rb.out; fail "the chain did not land on generation $before"; }
[ "$(active)" = "$before" ] || fail "active is $(active), not $before"
every_applet_resolves
/usr/bin/find / -maxdepth 0 >/dev/null || fail "find does not run"
"$OXIDIZR" status | grep -q DEGRADED || fail "status does not show the failed rollback"
"$OXIDIZR" verify --repair >/dev/null
expect_exit 0 "$OXIDIZR" verify
step "ok"
