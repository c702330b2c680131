#!/usr/bin/env bash
# Issue 13 items 4-5 (DESIGN.md §6.9): an admin mutation holds pacman's
# db.lck for its whole duration, so a `pacman -U` started at any phase of
# `use` is refused by pacman itself and nothing is lost; `verify` reports
# an operation in progress (exit 75) instead of in-flight states as damage;
# a stale db.lck is refused as pacman refuses it; any lock timeout value
# is an error id, never a panic. A verify started during an operation
# waits for it (bounded) and judges the finished state.
. /src/tests/e2e/common.bash
install_all
install_oxidizr
mark=/tmp/paused
dbl=/var/lib/pacman/db.lck
cases=0

# wait_mark: until the paused operation reached its point (bounded). Only
# builtins inside the loop: while pacman replaces coreutils, /usr/bin/sleep
# is briefly absent (libalpm unlinks, then extracts).
wait_mark() {
    local i
    for ((i = 0; i < 300; i++)); do [ -f $mark ] && return 0; read -rt 0.1 <> <(:) || :; done
    fail "the operation never reached its pause point $1"
}

v=1
for point in engine:after-intent engine:after-build engine:after-flip engine:after-link \
             engine:after-gnu-profile-build engine:after-state engine:after-clear-intent; do
    op=(use uutils); [ $((v % 2)) = 0 ] && op=(use gnu)
    pkg=$(mkpkg coreutils "9.1$v-1")
    if [ $point = engine:after-gnu-profile-build ]; then
        # Under the uutils profile a repair (force) rebuilds profiles/gnu.
        "$OXIDIZR" use uutils >/dev/null
        rm /usr/bin/pinky    # damage, so that the repair rebuilds
        op=(verify --repair)
    fi
    step "${op[*]} paused at $point; pacman -U coreutils 9.1$v-1 meanwhile"
    rm -f $mark
    OXIDIZR_PAUSE_AT=$point:8000 OXIDIZR_PAUSE_MARK=$mark "$OXIDIZR" "${op[@]}" >/tmp/use.out 2>&1 &
    pid=$!
    wait_mark $point
    [ -e $dbl ] || fail "$point: use does not hold pacman's lock"
    st=0; pacman_U "$pkg" >/tmp/pacman.out 2>&1 || st=$?
    [ $st != 0 ] || { cat /tmp/pacman.out; fail "$point: pacman ran a transaction during use"; }
    grep -q "unable to lock database" /tmp/pacman.out || { cat /tmp/pacman.out; fail "$point: pacman failed otherwise"; }
    st=0; "$OXIDIZR" --lock-timeout 1 verify >/tmp/verify.out 2>&1 || st=$?
    [ $st = 75 ] || { cat /tmp/verify.out; fail "$point: verify --lock-timeout 1 during the operation exited $st, not 75"; }
    grep -q "operation in progress" /tmp/verify.out || fail "$point: verify does not say an operation is in progress"
    # With the default wait, verify waits for the operation and then judges
    # the finished state: never an in-flight state as damage.
    "$OXIDIZR" verify >/tmp/verify-wait.out 2>&1 &
    vpid=$!
    st=0; "$OXIDIZR" --lock-timeout 1 use gnu >/tmp/second.out 2>&1 || st=$?
    [ $st = 30 ] || { cat /tmp/second.out; fail "$point: a second mutation exited $st, not 30 (E_LOCKING)"; }
    # The premise of the three refusals above: the operation was still paused.
    kill -0 $pid 2>/dev/null || fail "$point: the operation ended before the checks (pause too short): inconclusive"
    wait $pid || { cat /tmp/use.out; fail "$point: the paused ${op[*]} failed"; }
    wait $vpid || { cat /tmp/verify-wait.out; fail "$point: a verify started during the operation found problems"; }
    [ ! -e $dbl ] || fail "$point: db.lck left behind"
    every_applet_resolves
    expect_exit 0 "$OXIDIZR" verify
    step "after it: pacman -U coreutils 9.1$v-1 runs, with the hook"
    pacman_U "$pkg" >/tmp/pacman.out 2>&1 || { cat /tmp/pacman.out; fail "$point: pacman refused after use"; }
    grep -q "command failed" /tmp/pacman.out && { cat /tmp/pacman.out; fail "$point: the hook failed"; }
    every_applet_resolves
    expect_exit 0 "$OXIDIZR" verify
    v=$((v + 1)); cases=$((cases + 1))
done
[ $cases -ge 7 ] || fail "only $cases phases ran"

step "verify while pacman's post hook is held mid-way: operation in progress"
pkg=$(mkpkg coreutils 9.9-1)
rm -f $mark
OXIDIZR_PAUSE_AT=engine:after-flip:8000 OXIDIZR_PAUSE_MARK=$mark pacman_U "$pkg" >/tmp/pacman.out 2>&1 &
pid=$!
wait_mark engine:after-flip
st=0; "$OXIDIZR" verify >/tmp/verify.out 2>&1 || st=$?
[ $st = 75 ] || { cat /tmp/verify.out; fail "verify during the post hook exited $st, not 75"; }
kill -0 $pid 2>/dev/null || fail "the transaction ended before verify ran: inconclusive"
wait $pid || { cat /tmp/pacman.out; fail "the held transaction failed"; }
expect_exit 0 "$OXIDIZR" verify

step "a stale db.lck is refused as pacman refuses it; nothing changes"
touch $dbl
before=$(readlink /usr/lib/oxidizr-arch/active)
st=0; "$OXIDIZR" use gnu >/tmp/stale.out 2>&1 || st=$?
[ $st = 30 ] || { cat /tmp/stale.out; fail "use with a stale db.lck exited $st, not 30"; }
grep -q "unable to lock database" /tmp/stale.out || fail "the refusal does not say it as pacman does"
[ "$(readlink /usr/lib/oxidizr-arch/active)" = "$before" ] || fail "active moved"
[ -e $dbl ] || fail "someone else's db.lck was removed"
rm -f $dbl

step "lock timeouts: out of range is an error id, never a panic"
expect_exit 2 "$OXIDIZR" --lock-timeout 99999999999999 use gnu
expect_exit 2 "$OXIDIZR" --lock-timeout 0 use gnu
mkdir -p /etc/oxidizr-arch
write_config 'lock_timeout_secs = 18446744073709551615'
expect_exit 11 "$OXIDIZR" use gnu
write_config

step "the facts carry the lock wait"
tail -1 /var/log/oxidizr-arch/facts.jsonl | jq -e '.lock_wait_ms >= 0 and .lock_attempts >= 1' >/dev/null \
    || fail "no lock_wait_ms/lock_attempts in the facts: $(tail -1 /var/log/oxidizr-arch/facts.jsonl)"
step "ok ($cases phases)"
