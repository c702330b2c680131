#!/usr/bin/env bash
# A healthy boot, one boot, checks batched: oxidizr-arch installed by
# `pacman -U` with its units enabled, uutils made the core commands.
# - the boot gate runs before basic.target and passes;
# - oxidizr-verify.service runs at boot (after the gate), succeeds and logs;
# - the timer fires (a test drop-in: 2 s after activation) and runs verify again;
# - every hardening directive of both units is in force (the checks pass with them);
# - `pacman -U` of a new uutils-coreutils inside the booted root: the hook's
#   lines reach the journal with SYSLOG_IDENTIFIER=oxidizr-hook and the
#   "switched" MESSAGE_ID, explained by the catalog under `journalctl -x`.
SWITCHED=5c1f0f2b8a9e4d6b9c2e7a41d3b6f801

step "prepare: GNU + uutils packages, oxidizr-arch by pacman -U, use uutils, enable the units"
in_root bash -euc '. /src/tests/e2e/common.bash
    install_all
    install_oxidizr
    oxidizr-hook use uutils >/dev/null
    [ "$(readlink -f /usr/bin/ls)" != /usr/bin/ls ] || fail "ls is not managed after use uutils"
    systemctl enable oxidizr-boot-gate.service oxidizr-verify.service oxidizr-verify.timer
    [ -f /usr/lib/systemd/catalog/oxidizr-arch.catalog ] || fail "the package has no journal catalog"
    journalctl --update-catalog
    mkdir -p /etc/systemd/system/oxidizr-verify.timer.d /root/pkgs
    printf "[Timer]\nOnActiveSec=2s\nRandomizedDelaySec=0\nAccuracySec=1s\n" >/etc/systemd/system/oxidizr-verify.timer.d/test.conf
    cp "$(mkpkg uutils-coreutils 0.12.0-2)" /root/pkgs/'

boot_check "healthy" <<EOF2 || fail "the healthy-boot check failed"
set -e
echo "--- the boot gate ran before basic.target and passed"
[ "\$(systemctl show -P Result oxidizr-boot-gate.service)" = success ]
journalctl -b -u oxidizr-boot-gate.service -o cat | grep "passed its live check"
gate=\$(systemctl show -P ExecMainExitTimestampMonotonic oxidizr-boot-gate.service)
basic=\$(systemctl show -P ActiveEnterTimestampMonotonic basic.target)
echo "gate done at \$gate us, basic.target at \$basic us"
[ "\$gate" -gt 0 ] && [ "\$gate" -le "\$basic" ]
echo "--- oxidizr-verify.service ran at boot, after the gate, and succeeded"
[ "\$(systemctl show -P Result oxidizr-verify.service)" = success ]
v=\$(systemctl show -P ExecMainStartTimestampMonotonic oxidizr-verify.service)
[ "\$v" -ge "\$gate" ]
journalctl -b -u oxidizr-verify.service -o cat | grep -x "==> healthy"
echo "--- the timer fires (drop-in: 2 s after activation) and runs verify again"
# The boot's own verify run has finished (is-system-running --wait waited
# for it); a trigger while it ran would have been merged into it, so the
# timer is activated again now: it fires 2 s later, verify idle.
runs=\$(journalctl -b -u oxidizr-verify.service -o cat | grep -cx '==> healthy')
echo "verify runs so far: \$runs"
systemctl restart oxidizr-verify.timer
for i in \$(seq 60); do
    [ "\$(journalctl -b -u oxidizr-verify.service -o cat | grep -cx '==> healthy')" -gt "\$runs" ] && break
    sleep 0.5
done
systemctl show -p LastTriggerUSec oxidizr-verify.timer
[ -n "\$(systemctl show -P LastTriggerUSec oxidizr-verify.timer | grep -v n/a)" ]
[ "\$(journalctl -b -u oxidizr-verify.service -o cat | grep -cx '==> healthy')" -gt "\$runs" ]
[ "\$(systemctl show -P Result oxidizr-verify.service)" = success ]
echo "--- hardening in force"
for u in oxidizr-verify.service oxidizr-boot-gate.service; do
    systemctl show -p ProtectSystem -p ProtectProc -p PrivateIPC -p MemoryDenyWriteExecute -p RestrictAddressFamilies -p SystemCallArchitectures \$u | tr '\n' ' '; echo
    [ "\$(systemctl show -P MemoryDenyWriteExecute \$u)" = yes ]
    [ "\$(systemctl show -P ProtectProc \$u)" = invisible ]
    systemctl show -P CapabilityBoundingSet \$u | grep -vq cap_sys_admin
    systemd-analyze security --no-pager \$u | tail -1
done
echo "--- nothing failed"
systemctl --failed --no-legend
[ -z "\$(systemctl --failed --no-legend)" ]
echo "--- pacman -U inside the booted root: the hook's lines in the journal"
pacman -U --noconfirm /root/pkgs/uutils-coreutils-0.12.0-2-*.pkg.tar.zst
journalctl -b SYSLOG_IDENTIFIER=oxidizr-hook -o cat | tail -5
journalctl -b SYSLOG_IDENTIFIER=oxidizr-hook MESSAGE_ID=$SWITCHED -o verbose | grep -E "MESSAGE=|MESSAGE_ID=|OP_ID=|STAGE="
[ -n "\$(journalctl -b SYSLOG_IDENTIFIER=oxidizr-hook MESSAGE_ID=$SWITCHED -o cat)" ]
journalctl -b -x SYSLOG_IDENTIFIER=oxidizr-hook MESSAGE_ID=$SWITCHED --no-pager | grep "Subject: oxidizr-arch switched the core commands"
ls --version | head -1 | grep uutils
EOF2

step "the journal at rest: the verify runs of this boot"
journal -u oxidizr-verify.service -o cat | grep -cx "==> healthy"
[ "$(journal -u oxidizr-verify.service -o cat | grep -cx '==> healthy')" -ge 2 ] || fail "fewer than 2 verify runs in the persistent journal"
