#!/usr/bin/env bash
# `oxidizr-hook boot-gate` without a boot (the boot scenarios in tests/boot/
# run it as oxidizr-boot-gate.service): "not enabled" changes nothing; a
# passing generation is left alone; with uu-coreutils broken,
# boot_fallback = false only reports (exit 1, nothing moves) and the
# default falls back to GNU, holds it and marks the state degraded; the
# next run passes on the fall-back and clears its own mark.
. /src/tests/e2e/common.bash

step "never used: not enabled, nothing created"
install_all
install_oxidizr
$OXIDIZR boot-gate | tee /tmp/out
grep -q "not enabled" /tmp/out || fail "boot-gate did not say 'not enabled'"
[ ! -e /var/lib/oxidizr-arch ] || fail "boot-gate created our state on a system that never used oxidizr-arch"

step "uutils active: the gate passes and changes nothing"
$OXIDIZR use uutils >/dev/null
$OXIDIZR boot-gate | tee /tmp/out
grep -q "passed its live check" /tmp/out || fail "the gate did not pass a healthy generation"
$OXIDIZR status | grep -q "active generation: 1$" || fail "a passing gate moved active"

step "uu-coreutils broken, boot_fallback = false: reported, exit 1, nothing moves"
# From here until the fall-back every coreutils command is broken: only
# bash builtins, grep and jq below.
mkdir -p /etc/oxidizr-arch
write_config 'boot_fallback = false'
printf '#!/bin/sh\nexit 1\n' >/usr/bin/uu-coreutils
if /usr/bin/ls / >/dev/null 2>&1; then fail "ls works: the premise (a broken uutils) failed"; fi
expect_exit 1 $OXIDIZR boot-gate
$OXIDIZR status >/tmp/status
grep -q "active generation: 1$" /tmp/status || fail "boot_fallback = false moved active"
grep -q DEGRADED /tmp/status && fail "boot_fallback = false marked the state degraded"

step "boot_fallback = true (the default): falls back to GNU, held, degraded"
write_config
$OXIDIZR boot-gate --json >/tmp/gate.json
echo "$(</tmp/gate.json)"
jq -e '.result == "fell-back" and .fell_back == true' /tmp/gate.json >/dev/null || fail "the gate did not fall back"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU after the fall-back"
every_applet_resolves
$OXIDIZR status | tee /tmp/status
grep -q "DEGRADED.*boot gate" /tmp/status || fail "the state is not marked degraded by the gate"
grep -q "held" /tmp/status || fail "the fall-back generation is not held"
grep '"stage":"degraded"' /var/log/oxidizr-arch/facts.jsonl | tail -1 | grep -q "fell back" || fail "no degraded fact"
expect_exit 1 $OXIDIZR verify

step "the next run passes on the fall-back and clears its own mark"
$OXIDIZR boot-gate | tee /tmp/out
grep -q "passed its live check" /tmp/out || fail "the gate did not pass the fall-back generation"
$OXIDIZR status | grep -q DEGRADED && fail "the gate's degraded mark stayed after a passing run"
$OXIDIZR verify || fail "verify is not healthy on the held fall-back"
step "ok"
