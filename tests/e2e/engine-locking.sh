#!/usr/bin/env bash
# Our lock: a held lock makes a manual command wait (bounded) or fail with
# E_LOCKING (30); two `use` at once: one waits (the facts say so), both
# finish consistent; a manual command refuses while pacman's db.lck exists.
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
# `use gnu` holds the lock, paused 2 s after its intent (crash-injection
# build: OXIDIZR_PAUSE_AT); `use uutils` starts while it is paused, so it
# must wait. The facts say who waited: lock_attempts > 1 and lock_wait_ms.
facts=/var/log/oxidizr-arch/facts.jsonl
seen=$(wc -l <"$facts")
rm -f /tmp/paused
OXIDIZR_PAUSE_AT=engine:after-intent:2000 OXIDIZR_PAUSE_MARK=/tmp/paused "$OXIDIZR" use gnu >/tmp/a.out 2>&1 &
a=$!
for _ in $(seq 100); do [ -e /tmp/paused ] && break; sleep 0.1; done
[ -e /tmp/paused ] || { cat /tmp/a.out; fail "use gnu never reached its pause point engine:after-intent"; }
"$OXIDIZR" use uutils >/tmp/b.out 2>&1 &
b=$!
wait "$a" || { cat /tmp/a.out; fail "use gnu failed"; }
wait "$b" || { cat /tmp/b.out; fail "use uutils failed"; }
cat /tmp/a.out /tmp/b.out
# One line per operation of the two: "ATTEMPTS WAIT_MS OP_ID".
tail -n +"$((seen + 1))" "$facts" | jq -sr 'group_by(.op_id)[]
    | "\(map(.lock_attempts // 0) | max) \(map(.lock_wait_ms // 0) | max) \(.[0].op_id) \(.[0].operation)"' >/tmp/locks
cat /tmp/locks
[ "$(wc -l </tmp/locks)" = 2 ] || fail "expected the facts of 2 operations, got $(wc -l </tmp/locks)"
waited=$(awk '$1 > 1 && $2 >= 1000' /tmp/locks | wc -l)
free=$(awk '$1 == 1' /tmp/locks | wc -l)
[ "$waited" = 1 ] && [ "$free" = 1 ] || fail "one operation must have waited >= 1 s for the lock and the other found it free"
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
