#!/usr/bin/env bash
# A healthy boot: oxidizr-arch installed by `pacman -U`, its units enabled,
# uutils made the core commands; systemd boots the root as PID 1,
# oxidizr-verify.service runs at boot, succeeds and logs to the journal;
# the timer is scheduled; nothing failed.
step "prepare: GNU + uutils packages, oxidizr-arch by pacman -U, use uutils, enable the units"
in_root bash -euc '. /src/tests/e2e/common.bash
    install_all
    install_oxidizr
    oxidizr-hook use uutils >/dev/null
    systemctl enable oxidizr-verify.service oxidizr-verify.timer
    [ "$(readlink -f /usr/bin/ls)" != /usr/bin/ls ] || fail "ls is not managed after use uutils"'

boot_check "healthy" <<'EOF2' || fail "the healthy-boot check failed"
set -e
systemctl --failed --no-legend
[ -z "$(systemctl --failed --no-legend)" ] || { echo "failed units"; exit 1; }
r=$(systemctl show -P Result oxidizr-verify.service)
s=$(systemctl show -P ExecMainStatus oxidizr-verify.service)
echo "oxidizr-verify.service: Result=$r ExecMainStatus=$s"
[ "$r" = success ] && [ "$s" = 0 ]
[ "$(systemctl show -P ActiveState oxidizr-verify.timer)" = active ]
systemctl list-timers --no-pager oxidizr-verify.timer
journalctl -b -u oxidizr-verify.service --no-pager -o cat | tail -5
journalctl -b -u oxidizr-verify.service -o cat | grep -q . || { echo "no journal lines from verify"; exit 1; }
ls --version | head -1 | grep -q uutils
EOF2

step "the journal at rest: the verify run of this boot"
journal -u oxidizr-verify.service -o cat | tail -3
journal -u oxidizr-verify.service -o cat | grep -q . || fail "no verify lines in the persistent journal"
