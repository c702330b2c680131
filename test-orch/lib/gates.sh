#!/usr/bin/env bash
# Inside a scenario root: the code gates of `test-orch/run test`, each one
# counted as a test: formatting (cargo fmt --check), lints (cargo clippy
# --all-targets -D warnings) and documentation (cargo doc -D warnings), over
# the whole workspace with the testbed features (every target compiled).
#
# rustfmt and clippy come from Debian at exactly the version of the root's
# rustc (a different one would rebuild the world with another compiler, or
# lint with rules the compiler does not know). Writes "PASSED FAILED" to
# /artifacts/gates.counts.
set -uo pipefail
cd /src
say() { printf '==> %s\n' "$*" >&2; }
passed=0 failed=0
record() { # NAME STATUS LOG
    if [ "$2" = 0 ]; then
        passed=$((passed + 1)); say "gate $1 ... ok"
    else
        failed=$((failed + 1)); say "gate $1 ... FAILED"
        tail -80 "$3" | sed 's/^/    | /' >&2
    fi
}
version=$(dpkg-query -W -f='${Version}' rustc)
say "installing rustfmt and rust-clippy $version"
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        "rustfmt=$version" "rust-clippy=$version"; } >/tmp/gates-apt.log 2>&1; then
    tail -20 /tmp/gates-apt.log >&2
    say "FAILED: cannot install rustfmt/rust-clippy $version"
    echo "0 3" >/artifacts/gates.counts
    exit 1
fi
st=0; cargo fmt --all --check -- --color=never >/tmp/gate-fmt.log 2>&1 || st=$?
record "fmt (cargo fmt --all --check)" "$st" /tmp/gate-fmt.log
st=0; cargo clippy --locked --workspace --all-targets --features testbed -- -D warnings >/tmp/gate-clippy.log 2>&1 || st=$?
record "clippy (--workspace --all-targets -D warnings)" "$st" /tmp/gate-clippy.log
st=0; RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps --features testbed >/tmp/gate-doc.log 2>&1 || st=$?
record "doc (cargo doc -D warnings)" "$st" /tmp/gate-doc.log
echo "$passed $failed" >/artifacts/gates.counts
[ "$failed" = 0 ]
