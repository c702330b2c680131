#!/usr/bin/env bash
# A broken uutils never goes live; verify detects hand-made corruption and
# verify --repair fixes it.
. /src/tests/e2e/common.bash
install_all

step "use gnu first (generation 1)"
"$OXIDIZR" use gnu
gen_before=$(readlink /usr/lib/oxidizr-arch/active)

step "install a uutils-coreutils whose uu-ls exits 1; use uutils must fail with E_SMOKE (80)"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-2 ls-exit1)" >/dev/null
expect_exit 80 "$OXIDIZR" use uutils
[ "$(readlink /usr/lib/oxidizr-arch/active)" = "$gen_before" ] || fail "active moved: $(readlink /usr/lib/oxidizr-arch/active)"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU after the refused switch"
"$OXIDIZR" status | tee /tmp/status
grep -q DEGRADED /tmp/status || fail "status does not show degraded"
expect_exit 1 "$OXIDIZR" verify

step "a hanging uu-ls is cut by the smoke timeout"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-3 ls-hang)" >/dev/null
t0=$(date +%s)
expect_exit 80 "$OXIDIZR" --smoke-timeout 2 use uutils
[ $(( $(date +%s) - t0 )) -lt 30 ] || fail "the hang was not cut"
pgrep -f 'sleep 1000000' && fail "a hung smoke process survived"

step "a good uutils again: use uutils works, verify healthy"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-4)" >/dev/null
"$OXIDIZR" use uutils
expect_exit 0 "$OXIDIZR" verify

gen=$(readlink /usr/lib/oxidizr-arch/active)
corrupt() {
    step "corruption: $1"
    eval "$2"
    expect_exit 1 "$OXIDIZR" verify
    "$OXIDIZR" verify --repair
    expect_exit 0 "$OXIDIZR" verify
}
corrupt "a deleted link" "rm /usr/bin/cat"
corrupt "a dangling active" "ln -sfn generations/999 /usr/lib/oxidizr-arch/active"
corrupt "a foreign file in a generation" 'touch "/usr/lib/oxidizr-arch/$(readlink /usr/lib/oxidizr-arch/active)/junk"'
corrupt "a foreign entry in generations" "mkdir /usr/lib/oxidizr-arch/generations/not-a-generation"
ls /usr/lib/oxidizr-arch/quarantine

step "a modified store file is detected"
stty_store=$(ls -d /usr/lib/oxidizr-arch/store/gnu/coreutils-*/stty)
printf 'garbage' >>"$stty_store"
expect_exit 1 "$OXIDIZR" verify
{ "$OXIDIZR" verify 2>&1 || true; } | grep -q store-damaged || fail "store damage not reported"

step "reinstalling the package (what verify tells the admin), then verify --repair, heals the store"
pacman_U "$(mkpkg coreutils 9.10-1)" >/dev/null 2>&1
"$OXIDIZR" verify --repair
expect_exit 0 "$OXIDIZR" verify
cmp -s "$stty_store" /opt/oxidizr-testbed/gnu/stty || fail "the stored stty is not the pristine one again"
