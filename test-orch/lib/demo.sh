#!/usr/bin/env bash
# The main job in the testbed, narrated. Grows with the product: today it
# installs the Arch-like packages with real pacman and shows `status`.
. /src/tests/e2e/common.bash
step "testbed: $(tr '\n' ';' </etc/oxidizr-testbed-versions)"
if [ ! -x "$OXIDIZR" ]; then
    step "building oxidizr-hook (cargo build --release --locked)"
    (cd /src && cargo build --release --locked --quiet)
    OXIDIZR=/target/release/oxidizr-hook
fi
step "pacman -U coreutils 9.10-1, findutils 4.11.0-1 (GNU, from the root's binaries)"
pacman_U "$(mkpkg coreutils 9.10-1)" "$(mkpkg findutils 4.11.0-1)" 2>&1 | grep -E '^(loading|installing|checking)' || true
step "oxidizr-hook status: GNU only"
"$OXIDIZR" status
step "pacman -U uutils-coreutils 0.12.0-1, uutils-findutils 0.10.0-1"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" 2>&1 | grep -E '^installing' || true
step "oxidizr-hook status: uutils counterparts found through libalpm"
"$OXIDIZR" status
step "oxidizr-hook status --json (first family, first 3 applets)"
"$OXIDIZR" status --json | jq '{schema, families: [.families[0] | {name, gnu, uutils, applets: .applets[:3]}]}'
