#!/usr/bin/env bash
# Inside a scenario root: build the project, run the whole cargo test suite
# (tests that need root and pacman included), count results, and hand the
# built binary to the end-to-end scenarios through /artifacts.
#
# Writes "PASSED FAILED" to /artifacts/cargo.counts. Any ignored test counts
# as a failure (zero-skip): a test that does not run proves nothing.
set -uo pipefail
cd /src
say() { printf '==> %s\n' "$*" >&2; }

say "testbed: $(tr '\n' ';' </etc/oxidizr-testbed-versions)"
say "cargo build (target dir /target)"
if ! cargo build --locked --workspace --all-targets --features testbed >/tmp/cargo-build.log 2>&1; then
    tail -60 /tmp/cargo-build.log >&2
    say "build failed"
    exit 1
fi
mkdir -p /artifacts/bin
cp /target/debug/oxidizr-hook /artifacts/bin/oxidizr-hook

say "cargo test"
log=/tmp/cargo-test.log
cargo test --locked --workspace --no-fail-fast --features testbed 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

read -r passed failed ignored < <(awk '
    /^test result: / {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed;?$/) p += $i
            if ($(i+1) ~ /^failed;?$/) f += $i
            if ($(i+1) ~ /^ignored;?$/) g += $i
        }
    }
    END { printf "%d %d %d\n", p, f, g }' "$log")
if [ "$ignored" -gt 0 ]; then
    say "FAILED: $ignored test(s) ignored; zero-skip rule: every test must run"
    grep -E '^test .* \.\.\. ignored' "$log" >&2 || true
    failed=$((failed + ignored))
fi
# Per test target ("TARGET PASSED FAILED IGNORED"), for the floors that
# test-orch/run checks (test-orch/floors): libtest's `Running ... (.../deps/
# NAME-HASH)` and `Doc-tests NAME` lines name the target whose `test
# result:` follows. A target that ran but crashed before its result line
# is listed with 0 tests (so its floor fails).
awk '
    function flush() { if (t != "") { printf "%s %d %d %d\n", t, p, f, g }; t = ""; p = f = g = 0 }
    /^ *Running / {
        flush(); t = $NF; gsub(/[()]/, "", t); sub(/.*\//, "", t); sub(/-[0-9a-f]+$/, "", t)
    }
    /^ *Doc-tests / { flush(); t = "doc-" $2 }
    /^test result: / && t != "" {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed;?$/) p += $i
            if ($(i+1) ~ /^failed;?$/) f += $i
            if ($(i+1) ~ /^ignored;?$/) g += $i
        }
    }
    END { flush() }' "$log" >/artifacts/cargo.targets
sed 's/^/    target /' /artifacts/cargo.targets >&2
say "cargo test: $passed passed, $failed failed, $ignored ignored"
# The traceability gate (test-orch/lib/trace-check.sh) reads which tests ran.
cp "$log" /artifacts/cargo-test.log
echo "$passed $failed" >/artifacts/cargo.counts
[ "$status" = 0 ] && [ "$failed" = 0 ]
