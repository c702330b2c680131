#!/usr/bin/env bash
# Our lock: a held lock makes a manual command wait (bounded) or fail with
# E_LOCKING (30); two `use` at once both finish consistent; a manual
# command refuses while pacman's db.lck exists.
. /src/tests/e2e/common.bash
install_all
"$OXIDIZR" use gnu

step "lock held elsewhere: --lock-timeout 1 gives E_LOCKING (30)"
flock /var/lib/oxidizr-arch/lock sleep 4 &
holder=$!
sleep 0.5
"$OXIDIZR" --lock-timeout 1 --json use uutils >/tmp/out.json && fail "should not get the lock"
jq -e '.error.id == "E_LOCKING" and .error.exit_code == 30' /tmp/out.json >/dev/null || { cat /tmp/out.json; fail "not E_LOCKING"; }
expect_exit 30 "$OXIDIZR" --lock-timeout 1 use uutils

step "a longer wait succeeds once the holder lets go"
t0=$(date +%s%N)
"$OXIDIZR" --lock-timeout 20 use uutils
waited=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$holder"
echo "waited ${waited} ms for the lock"
[ "$waited" -ge 1000 ] || fail "did not wait for the holder (${waited} ms)"

step "two use at once: one waits, both finish, the state is consistent"
"$OXIDIZR" use gnu >/tmp/a.out 2>&1 &
a=$!
"$OXIDIZR" use uutils >/tmp/b.out 2>&1 &
b=$!
wait "$a" || { cat /tmp/a.out; fail "use gnu failed"; }
wait "$b" || { cat /tmp/b.out; fail "use uutils failed"; }
cat /tmp/a.out /tmp/b.out
expect_exit 0 "$OXIDIZR" verify
profile=$("$OXIDIZR" status --json | jq -r .profile)
gen=$(readlink /usr/lib/oxidizr-arch/active)
jq -e --arg p "$profile" '.profile == $p' "/usr/lib/oxidizr-arch/$gen/manifest.json" >/dev/null || fail "state says $profile, active is another profile"
echo "final profile $profile on $gen"

step "pacman's db.lck: manual commands refuse with E_LOCKING"
touch /var/lib/pacman/db.lck
expect_exit 30 "$OXIDIZR" use gnu
{ "$OXIDIZR" use gnu 2>&1 || true; } | grep -q "pacman is mid-transaction" || fail "no clear message"
"$OXIDIZR" status >/dev/null || fail "read-only status must still work"
rm /var/lib/pacman/db.lck
"$OXIDIZR" use gnu
