#!/usr/bin/env bash
# Floors: the least number of tests each part of the suite must run, so a
# test that silently vanishes (a feature gate that stops matching, a
# scenario that exits early, a crash-matrix operation that loses its kill
# points) fails the run instead of leaving it green.
#
#   floors_check FLOORS ARTIFACTS SCOPE
#       FLOORS: the floors file (test-orch/floors): `KIND NAME MIN` per line,
#       `#` comments. ARTIFACTS: the run's artifacts directory:
#         cargo.targets          TARGET PASSED FAILED IGNORED (inner-test.sh)
#         e2e.ran                NAME CASES, one line per scenario that ran
#         e2e-crash-matrix.ops   OP COUNT (kill points per operation)
#       SCOPE: `test` checks every floor; `e2e` only the floors of the
#       scenarios that ran (e2e-cases, and crash-op when crash-matrix ran).
#       Prints one line per violated floor and a summary; sets
#       floors_checked and floors_failed (each violated floor is one failed
#       test in the run's totals).
#   bash test-orch/lib/floors.sh --self-test
#       proves the check fails: fake artifacts below and above the floors.
#
# Kinds:
#   cargo-total    all   tests run (passed + failed) over every cargo target
#   cargo-target   NAME  tests run by one target (libtest's deps name:
#                        oxidizr_arch for the library, kernel for
#                        tests/kernel.rs, doc-NAME for doc-tests)
#   e2e-scenarios  all   end-to-end scenarios that ran
#   e2e-cases      NAME  cases scenario NAME counted (its .counts file;
#                        1 for a scenario without one)
#   crash-op       OP    crash-matrix kill points of operation OP

floors_check() {
    local floors=$1 art=$2 scope=$3
    local kind name min got why
    floors_checked=0 floors_failed=0
    declare -A target_ran=() scenario_cases=() op_points=()
    local have_targets=0 have_ops=0 n_scenarios=0 total=0
    local t p f g
    if [ -f "$art/cargo.targets" ]; then
        have_targets=1
        while read -r t p f g; do
            [ -n "$t" ] || continue
            target_ran[$t]=$((${target_ran[$t]:-0} + p + f))
            total=$((total + p + f))
        done <"$art/cargo.targets"
    fi
    if [ -f "$art/e2e.ran" ]; then
        while read -r t p; do
            [ -n "$t" ] || continue
            scenario_cases[$t]=$p
            n_scenarios=$((n_scenarios + 1))
        done <"$art/e2e.ran"
    fi
    if [ -f "$art/e2e-crash-matrix.ops" ]; then
        have_ops=1
        while read -r t p; do
            [ -n "$t" ] || continue
            op_points[$t]=$((${op_points[$t]:-0} + p))
        done <"$art/e2e-crash-matrix.ops"
    fi
    [ -f "$floors" ] || {
        floors_failed=1
        echo "FLOOR FAILED: no floors file $floors"
        return 0
    }
    while read -r kind name min; do
        case $kind in '' | '#'*) continue ;; esac
        got= why=
        case $kind in
        cargo-total)
            [ "$scope" = test ] || continue
            if [ "$have_targets" = 1 ]; then got=$total; else why="no per-target cargo counts (the cargo phase did not run)"; fi
            ;;
        cargo-target)
            [ "$scope" = test ] || continue
            if [ -n "${target_ran[$name]:-}" ]; then
                got=${target_ran[$name]}
            else
                why="the test target did not run"
            fi
            ;;
        e2e-scenarios)
            [ "$scope" = test ] || continue
            got=$n_scenarios
            ;;
        e2e-cases)
            if [ -n "${scenario_cases[$name]:-}" ]; then
                got=${scenario_cases[$name]}
            else
                [ "$scope" = test ] || continue
                why="the scenario did not run"
            fi
            ;;
        crash-op)
            [ "$scope" = test ] || [ -n "${scenario_cases[crash-matrix]:-}" ] || continue
            if [ "$have_ops" = 0 ]; then
                why="no kill points per operation (/artifacts/e2e-crash-matrix.ops missing)"
            else
                got=${op_points[$name]:-0}
            fi
            ;;
        *)
            why="unknown floor kind '$kind' (a typo would skip a floor)"
            ;;
        esac
        floors_checked=$((floors_checked + 1))
        if [ -z "$why" ] && ! [[ "$min" =~ ^[0-9]+$ ]]; then
            why="the floor '$min' is not a number"
        fi
        if [ -z "$why" ] && [ "$got" -lt "$min" ]; then
            why="ran $got, floor $min"
        fi
        if [ -n "$why" ]; then
            floors_failed=$((floors_failed + 1))
            echo "FLOOR FAILED: $kind $name: $why"
        fi
    done <"$floors"
    # Targets that ran with no floor: not a failure, but say so.
    if [ "$scope" = test ]; then
        for t in "${!target_ran[@]}"; do
            grep -qE "^cargo-target[[:space:]]+$t[[:space:]]" "$floors" || echo "floor note: cargo target $t (${target_ran[$t]} tests) has no floor"
        done
    fi
    echo "floors: $floors_checked checked, $floors_failed violated"
}

floors_self_test() {
    local d rc=0
    d=$(mktemp -d)
    cat >"$d/floors" <<'EOF'
# a comment
cargo-total all 10
cargo-target lib 8
cargo-target gone 1
e2e-scenarios all 2
e2e-cases many 5
e2e-cases single 1
crash-op use 5
crash-op rollback 5
EOF
    # At the floors (kept), then below each one.
    printf 'lib 8 0 0\nother 2 0 0\n' >"$d/cargo.targets"
    printf 'many 5\nsingle 1\ncrash-matrix 160\n' >"$d/e2e.ran"
    printf 'use 5\nrollback 7\n' >"$d/e2e-crash-matrix.ops"
    floors_check "$d/floors" "$d" test >"$d/out"
    # `gone` did not run: exactly one violation.
    [ "$floors_failed" = 1 ] && grep -q "cargo-target gone: the test target did not run" "$d/out" || {
        cat "$d/out"
        echo "self-test: at the floors, expected only 'gone' to fail"
        rc=1
    }
    printf 'lib 7 0 0\n' >"$d/cargo.targets"
    printf 'many 4\n' >"$d/e2e.ran"
    printf 'use 4\n' >"$d/e2e-crash-matrix.ops"
    floors_check "$d/floors" "$d" test >"$d/out"
    # total 7<10, lib 7<8, gone, scenarios 1<2, many 4<5, single missing,
    # use 4<5, rollback absent: 8 violations.
    [ "$floors_failed" = 8 ] || {
        cat "$d/out"
        echo "self-test: below every floor, expected 8 violations, got $floors_failed"
        rc=1
    }
    # e2e scope: only what ran (many); crash-op only with crash-matrix.
    floors_check "$d/floors" "$d" e2e >"$d/out"
    [ "$floors_failed" = 1 ] && grep -q "e2e-cases many: ran 4, floor 5" "$d/out" || {
        cat "$d/out"
        echo "self-test: e2e scope, expected only 'many' to fail"
        rc=1
    }
    rm -f "$d/e2e-crash-matrix.ops"
    printf 'crash-matrix 150\n' >"$d/e2e.ran"
    floors_check "$d/floors" "$d" e2e >"$d/out"
    [ "$floors_failed" = 2 ] || {
        cat "$d/out"
        echo "self-test: crash-matrix without its .ops file, expected the 2 crash-op floors to fail"
        rc=1
    }
    echo "bogus-kind x 1" >>"$d/floors"
    floors_check "$d/floors" "$d" e2e >"$d/out"
    [ "$floors_failed" = 3 ] || {
        cat "$d/out"
        echo "self-test: an unknown kind must fail"
        rc=1
    }
    rm -rf "$d"
    [ "$rc" = 0 ] && echo "floors self-test: ok"
    return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case ${1:-} in
    --self-test) floors_self_test ;;
    *)
        [ $# = 3 ] || { echo "usage: floors.sh FLOORS ARTIFACTS test|e2e | --self-test" >&2; exit 2; }
        floors_check "$@"
        [ "$floors_failed" = 0 ]
        ;;
    esac
fi
