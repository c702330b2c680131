#!/usr/bin/env bash
# Issue 13 item 6: a run killed mid-way leaves `.oxidizr-tmp.*` entries
# (in /usr/bin, the sidecar directory, the store, our lib directory).
# verify reports them as debris; the next mutating command sweeps them; and
# oxidizr-arch's own removal leaves none behind. (Before: recovery swept
# only generations/, verify looked only there, and a dangling
# /usr/bin/.oxidizr-tmp.* owned by no package survived `pacman -R`.)
. /src/tests/e2e/common.bash
install_all
install_oxidizr
ours="/usr/bin /usr/lib/oxidizr-arch /var/lib/oxidizr-arch"
temps() { find $ours -name '.oxidizr-tmp.*' 2>/dev/null | LC_ALL=C sort; }

# kill_at POINT CMD...: runs CMD killed at crash point POINT; fails unless
# it was killed there.
kill_at() {
    local point=$1; shift
    rm -f /tmp/trace
    OXIDIZR_CRASH_TRACE=/tmp/trace OXIDIZR_CRASH_AT="$point" "$@" >/tmp/killed.out 2>&1 && fail "'$*' was not killed at $point"
    tail -1 /tmp/trace | grep -q " ${point%#*}\$" || fail "'$*' stopped elsewhere than $point: $(tail -1 /tmp/trace)"
}

# debris_cycle POINT CMD...: kill, see debris reported, sweep with `use`.
debris_cycle() {
    local point=$1; shift
    step "killed at $point: temporaries left, verify reports them, the next command sweeps them"
    kill_at "$point" "$@"
    temps >/tmp/temps
    [ -s /tmp/temps ] || fail "premise: the kill at $point left no temporary"
    sed 's/^/    left: /' /tmp/temps
    "$OXIDIZR" verify >/tmp/verify.out 2>&1 && fail "verify exits 0 with debris left"
    while IFS= read -r t; do
        grep -qF "[debris]: $t" /tmp/verify.out || { cat /tmp/verify.out; fail "verify does not report $t"; }
    done </tmp/temps
    "$OXIDIZR" use uutils >/tmp/use.out 2>&1 || { cat /tmp/use.out; fail "use uutils after the kill failed"; }
    [ -z "$(temps)" ] || fail "temporaries remain after the next command: $(temps | tr '\n' ' ')"
    expect_exit 0 "$OXIDIZR" verify
    every_applet_resolves
}

# /usr/bin link swaps (the first swaps are in the lib directory).
debris_cycle 'swap:after-symlink-tmp#20' "$OXIDIZR" use uutils
"$OXIDIZR" use gnu >/dev/null
# Sidecars being written (durable temp files in the sidecar directory).
debris_cycle 'durable:after-tmp#3' "$OXIDIZR" use uutils
"$OXIDIZR" use gnu >/dev/null
"$OXIDIZR" disable >/dev/null
pacman_U "$(mkpkg coreutils 9.11-1)" >/dev/null
# Harvest of the new version into the store (temporary hard links).
debris_cycle 'harvest:after-tmp#2' "$OXIDIZR" use uutils

step "pacman -R oxidizr-arch, its pre-remove hook killed while staging a restore; pacman -R again: nothing left"
rm -f /tmp/trace
OXIDIZR_CRASH_TRACE=/tmp/trace OXIDIZR_CRASH_AT='restore:after-stage#3' pacman -R --noconfirm oxidizr-arch >/tmp/remove.out 2>&1 \
    && { cat /tmp/remove.out; fail "pacman -R went through although its pre-remove hook was killed"; }
tail -1 /tmp/trace | grep -q ' restore:after-stage$' || fail "the hook stopped elsewhere: $(tail -1 /tmp/trace)"
pacman -Q oxidizr-arch >/dev/null || fail "premise: the aborted transaction removed oxidizr-arch"
temps | grep -q '^/usr/bin/' || fail "premise: no /usr/bin temporary after the killed hook"
pacman -R --noconfirm oxidizr-arch >/tmp/remove.out 2>&1 || { cat /tmp/remove.out; fail "pacman -R oxidizr-arch failed"; }
[ -z "$(temps)" ] || fail "left after the removal: $(temps | tr '\n' ' ')"
[ ! -e /usr/lib/oxidizr-arch ] || fail "/usr/lib/oxidizr-arch remains after the removal"
while IFS= read -r a; do
    [ -f "/usr/bin/$a" ] && [ ! -L "/usr/bin/$a" ] || fail "/usr/bin/$a is not pacman's file after the removal"
done < <(managed_applets)
pacman -Qkk coreutils findutils >/tmp/qkk.out 2>&1 || { cat /tmp/qkk.out; fail "pacman -Qkk reports changed files"; }
echo "crash-debris: ok"
