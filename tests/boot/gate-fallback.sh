#!/usr/bin/env bash
# The boot gate, two boots: the uutils binary is broken between boots
# (rewritten in place: it runs and exits 1).
# Boot 1: the gate finds the active generation failing its live check,
# falls back (here to GNU: no other uutils generation passes), marks the
# state degraded and logs it with the "degraded" MESSAGE_ID; ls works
# again (GNU); verify fails on this boot (degraded), on purpose.
# Boot 2: healthy: the gate passes, nothing failed, verify succeeds, and
# the fall-back of boot 1 is in the journal, found by its MESSAGE_ID and
# explained by the catalog.
DEGRADED=5c1f0f2b8a9e4d6b9c2e7a41d3b6f803

step "prepare: uutils active, the three units enabled, then uu-coreutils broken"
in_root bash -euc '. /src/tests/e2e/common.bash
    install_all
    install_oxidizr
    oxidizr-hook use uutils >/dev/null
    systemctl enable oxidizr-boot-gate.service oxidizr-verify.service oxidizr-verify.timer
    journalctl --update-catalog
    ls --version | head -1 | grep uutils
    printf "#!/bin/sh\nexit 1\n" >/usr/bin/uu-coreutils
    if /usr/bin/ls / >/dev/null; then fail "ls still works with a broken uu-coreutils"; fi'

boot_check "broken uutils: the gate falls back" <<EOF2 || fail "boot 1 check failed"
set -e
journalctl -b -u oxidizr-boot-gate.service -o cat
[ "\$(systemctl show -P Result oxidizr-boot-gate.service)" = success ]
journalctl -b MESSAGE_ID=$DEGRADED -o verbose | grep -E "SYSLOG_IDENTIFIER=|MESSAGE="
journalctl -b MESSAGE_ID=$DEGRADED SYSLOG_IDENTIFIER=oxidizr-hook -o cat | grep "fell back to"
ls --version | head -1
ls --version | head -1 | grep -v uutils | grep -q "GNU coreutils"
oxidizr-hook status | grep -i degraded
[ "\$(systemctl show -P Result oxidizr-verify.service)" = exit-code ]
journalctl -b -u oxidizr-verify.service -o cat | grep "problem \[degraded\]"
EOF2

boot_check "the next boot is healthy" <<EOF2 || fail "boot 2 check failed"
set -e
journalctl -b -u oxidizr-boot-gate.service -o cat
journalctl -b -u oxidizr-boot-gate.service -o cat | grep "passed its live check"
systemctl --failed --no-legend
[ -z "\$(systemctl --failed --no-legend)" ]
[ "\$(systemctl show -P Result oxidizr-verify.service)" = success ]
ls --version | head -1 | grep -q "GNU coreutils"
echo "--- the fall-back of the previous boot, by MESSAGE_ID"
journalctl -D /var/log/journal MESSAGE_ID=$DEGRADED -o cat
[ -z "\$(journalctl -b MESSAGE_ID=$DEGRADED -o cat)" ]
[ -n "\$(journalctl -D /var/log/journal MESSAGE_ID=$DEGRADED -o cat)" ]
journalctl -D /var/log/journal -x MESSAGE_ID=$DEGRADED --no-pager | grep "Subject: oxidizr-arch boot gate: the core commands fell back"
oxidizr-hook status
EOF2
