#!/usr/bin/env bash
# Damage found at boot: a managed link repointed and a stored GNU binary
# changed between boots make oxidizr-verify.service `failed` in
# `systemctl --failed`, with both reasons in `journalctl -u`; the boot
# itself goes on (multi-user reached). The boot gate is not enabled here:
# it would fall back from the repointed link before verify looks.
step "prepare: uutils active, verify + timer enabled, then the damage"
in_root bash -euc '. /src/tests/e2e/common.bash
    install_all
    install_oxidizr
    oxidizr-hook use uutils >/dev/null
    systemctl enable oxidizr-verify.service oxidizr-verify.timer
    oxidizr-hook verify
    ln -sfn /usr/bin/uu-cat /usr/bin/ls
    stored=$(find /usr/lib/oxidizr-arch -path "*store*" -type f -name sort | head -1)
    [ -n "$stored" ] || fail "no stored GNU sort"
    echo "$stored"
    printf "tampered" >>"$stored"
    if oxidizr-hook verify; then fail "verify passed on a damaged root"; fi'

boot_check "damaged" <<'EOF2' || fail "the damage check failed"
set -e
systemctl --failed --no-legend
systemctl --failed --no-legend | grep -q "oxidizr-verify.service"
[ "$(systemctl show -P Result oxidizr-verify.service)" = exit-code ]
[ "$(systemctl show -P ExecMainStatus oxidizr-verify.service)" = 1 ]
journalctl -b -u oxidizr-verify.service -o cat | grep "problem"
journalctl -b -u oxidizr-verify.service -o cat | grep "problem \[link-foreign\]: /usr/bin/ls"
journalctl -b -u oxidizr-verify.service -o cat | grep "problem \[store-damaged\].*sort"
[ "$(systemctl show -P ActiveState multi-user.target)" = active ]
EOF2
