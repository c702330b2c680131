#!/usr/bin/env bash
# The traceability gate: every test docs/TRACEABILITY.md names exists and
# passed in this very run. Run by `test-orch/run test` after both phases.
#
# Usage: trace-check.sh TABLE CARGO_LOG E2E_PASSED
#   TABLE       docs/TRACEABILITY.md; a test is named in backquotes, as
#               `cargo FILE::TEST` (FILE: tests/NAME.rs or devtools/tests/
#               NAME.rs, or src/PATH.rs for a unit test of the library,
#               matched as the last component of its module path) or
#               `e2e SCENARIO` (tests/e2e/SCENARIO.sh)
#   CARGO_LOG   the output of `cargo test` (its "Running FILE" headers
#               tell which test binary each "test NAME ... ok" line is from)
#   E2E_PASSED  the scenarios that passed, one name a line
# Prints one line per test that is missing or did not pass, then a summary;
# exits 1 when any is, or when the table names no test at all.
set -euo pipefail
table=${1:?table} cargo_log=${2:?cargo log} e2e_passed=${3:?e2e passed list}
[ -f "$table" ] || { echo "trace-check: no $table" >&2; exit 1; }
[ -f "$cargo_log" ] || { echo "trace-check: no cargo test log $cargo_log" >&2; exit 1; }
touch "$e2e_passed"
cargo_log=$(realpath "$cargo_log") e2e_passed=$(realpath "$e2e_passed")
# Paths in the table are the repository's: tests/..., src/...
cd "$(dirname "$(realpath "$table")")/.."

# "FILE TEST" for every passed cargo test: unit tests of the library are
# filed under src/lib.rs, those of a bin under its own file.
passed=$(mktemp)
trap 'rm -f "$passed"' EXIT
awk '
    /^ *Running (unittests )?[^ ]+\.rs / { f = ($2 == "unittests") ? $3 : $2; next }
    /^ *Doc-tests / { f = ""; next }
    /^test .* \.\.\. ok$/ && f != "" { print f, $2 }
' "$cargo_log" >"$passed"

named=0 bad=0
while IFS= read -r ref; do
    named=$((named + 1))
    kind=${ref%% *} what=${ref#* }
    case $kind in
    cargo)
        file=${what%%::*} test=${what#*::}
        [ -f "$file" ] || { echo "trace-check: $ref: no file $file"; bad=$((bad + 1)); continue; }
        case $file in
        tests/*) bin=$file ;;                  # an integration test
        */tests/*) bin=tests/${file#*/tests/} ;; # a member's: cargo names it from the member's root
        src/bin/* | */src/bin/*) bin=$file ;;  # a binary's unit tests
        src/*) bin=src/lib.rs ;;               # the library's unit tests, filed under its root
        *) echo "trace-check: $ref: not a test file of this workspace"; bad=$((bad + 1)); continue ;;
        esac
        # A unit test's full name is its module path: match the last component.
        awk -v b="$bin" -v t="$test" '
            $1 == b && ($2 == t || substr($2, length($2) - length(t) - 1) == "::" t) { found = 1 }
            END { exit !found }' "$passed" \
            || { echo "trace-check: $ref did not run and pass"; bad=$((bad + 1)); }
        ;;
    e2e)
        [ -f "tests/e2e/$what.sh" ] || { echo "trace-check: $ref: no scenario tests/e2e/$what.sh"; bad=$((bad + 1)); continue; }
        grep -qxF "$what" "$e2e_passed" || { echo "trace-check: $ref did not run and pass"; bad=$((bad + 1)); }
        ;;
    *) echo "trace-check: $ref: unknown kind '$kind'"; bad=$((bad + 1)) ;;
    esac
done < <(grep -o '`\(cargo\|e2e\) [^`]*`' "$table" | tr -d '`' | sort -u)

[ "$named" -gt 0 ] || { echo "trace-check: $table names no test"; exit 1; }
echo "trace-check: $named tests named in $(basename "$table"), $bad missing or not passed"
[ "$bad" = 0 ]
