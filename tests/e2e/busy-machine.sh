#!/usr/bin/env bash
# Invariant 8 (DESIGN.md §6): a smoke failure is a real failure. On a busy
# machine other processes rename files while the hooks run, and
# openat2(RESOLVE_IN_ROOT) answers EAGAIN when any rename races the `..` of
# a path it resolves (a generation that shares another's links is
# `bin -> ../<M>/bin`). Here: real pacman transactions with the real hooks
# under the uutils profile, alternating two versions of findutils (and
# every 8th run of coreutils): every one builds a generation that shares
# the links, flips, and live-smokes every managed command through it; and
# `oxidizr-hook verify` runs. Meanwhile loops in the same root rename
# files (`mv a b; mv b a`) and directories. Every run must succeed: a hook
# run that prints "command failed", lacks its success line or leaves the
# state degraded, or a verify that does not exit 0, is a failure. Prints
# the counts (one case for test-orch); 0 failures required.
#
# findutils is the cheap trigger: pacman writes two files, the hook
# harvests them, and the live smoke still resolves all ~110 managed
# commands through the shared tree — the resolutions the race hits.
. /src/tests/e2e/common.bash

runs=200
verify_every=10 # one run in 10 is a verify (it executes every applet: the slow kind)
install_all
command -v busybox >/dev/null && fail "precondition: a stock Arch root has no busybox"
install_oxidizr
"$OXIDIZR" use uutils >/dev/null
# Index 1 first: each run installs the version that is not installed.
find_pkgs=("$(mkpkg findutils 4.11.0-1)" "$(mkpkg findutils 4.11.0-2)")
core_pkgs=("$(mkpkg coreutils 9.10-1)" "$(mkpkg coreutils 9.11-1)")

step "renamers: files and directories renamed in a loop, in the same root"
scratch=/var/tmp/busy
mkdir -p "$scratch"
renamers=()
stop_renamers() {
    local pid
    for pid in "${renamers[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${renamers[@]}"; do wait "$pid" 2>/dev/null || true; done
    renamers=()
}
trap stop_renamers EXIT
# The loops run a pristine GNU mv, not the managed /usr/bin/mv: pacman
# itself unlinks /usr/bin/mv before it extracts the new one during a
# coreutils upgrade, and the load must not pause then. A failed rename is
# logged and counted, and the loop goes on.
mv=/opt/oxidizr-testbed/gnu/mv
[ -x "$mv" ] || fail "precondition: no pristine GNU mv at $mv"
for i in 1 2 3; do
    mkdir -p "$scratch/f$i"; : >"$scratch/f$i/a"
    ( set +e; cd "$scratch/f$i" && while :; do "$mv" a b; "$mv" b a; done ) >/dev/null 2>>/tmp/renamers.err &
    renamers+=($!)
done
mkdir -p "$scratch/d/one/sub"; : >"$scratch/d/one/sub/file"
( set +e; cd "$scratch/d" && while :; do "$mv" one two; "$mv" two one; done ) >/dev/null 2>>/tmp/renamers.err &
renamers+=($!)
# A tight loop without a fork per rename: far more renames per second.
perl -e 'chdir $ARGV[0] or die; open my $f, ">", "x" or die; close $f;
         while (1) { rename "x", "y"; rename "y", "x"; }' "$scratch" >/dev/null 2>&1 &
renamers+=($!)
sleep 0.5
for pid in "${renamers[@]}"; do kill -0 "$pid" || fail "precondition: renamer $pid is not running"; done
[ -e "$scratch/x" ] || [ -e "$scratch/y" ] || fail "precondition: the perl renamer did not start"

step "$runs runs: pacman -U findutils/coreutils (the post hook) and verify"
passed=0 failed=0 hook_runs=0 verify_runs=0 hook_s=0 verify_s=0 find_n=0 core_n=0
t0=$SECONDS
for ((i = 1; i <= runs; i++)); do
    if ((i % verify_every)); then
        hook_runs=$((hook_runs + 1))
        # findutils -2, -1, -2, ...; every 8th run coreutils 9.11, 9.10, ...
        if ((hook_runs % 8)); then
            find_n=$((find_n + 1)) && pkg=${find_pkgs[find_n % 2]}
        else
            core_n=$((core_n + 1)) && pkg=${core_pkgs[core_n % 2]}
        fi
        ok=1 t=$SECONDS
        pacman_U "$pkg" >/tmp/pacman.out 2>&1 || ok=0
        hook_s=$((hook_s + SECONDS - t))
        grep -q "command failed" /tmp/pacman.out && ok=0
        grep -q "oxidizr-arch: profile uutils active: generation" /tmp/pacman.out || ok=0
        "$OXIDIZR" status --json >/tmp/status.json 2>/dev/null || ok=0
        jq -e '.degraded == null' /tmp/status.json >/dev/null || ok=0
        if [ "$ok" = 1 ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "run $i (hook, $(basename "$pkg")) FAILED:"
            grep -E "oxidizr|error|failed" /tmp/pacman.out | sed 's/^/    /'
            # Back to healthy, so every later run counts on its own.
            "$OXIDIZR" verify --repair >/dev/null 2>&1 || true
        fi
    else
        verify_runs=$((verify_runs + 1))
        ok=1 t=$SECONDS
        "$OXIDIZR" verify >/tmp/verify.out 2>&1 || ok=0
        verify_s=$((verify_s + SECONDS - t))
        if [ "$ok" = 1 ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "run $i (verify) FAILED:"
            sed 's/^/    /' /tmp/verify.out
            "$OXIDIZR" verify --repair >/dev/null 2>&1 || true
        fi
    fi
done
for pid in "${renamers[@]}"; do kill -0 "$pid" || fail "renamer $pid died during the runs: the load was not there"; done
stop_renamers
echo "busy machine: $((passed + failed)) runs ($hook_runs hook: ${hook_s} s, $verify_runs verify: ${verify_s} s) in $((SECONDS - t0)) s: $passed passed, $failed failed"
mv_failures=$(grep -c . /tmp/renamers.err || true)
echo "renamer loops: $mv_failures failed renames"
[ "$mv_failures" = 0 ] || { head -5 /tmp/renamers.err; fail "the renamer loops failed $mv_failures times: the load was not steady"; }
[ $((passed + failed)) = "$runs" ] || fail "counted $((passed + failed)) runs, expected $runs"
[ "$failed" = 0 ] || fail "$failed of $runs runs failed on a busy machine"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify
