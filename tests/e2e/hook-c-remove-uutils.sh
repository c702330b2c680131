#!/usr/bin/env bash
# (c) uutils active -> pacman -R uutils-coreutils -> the pre hook flips to
# GNU first; probe hooks run every applet mid-transaction (after our pre
# hook, and in PostTransaction before ours): none is unresolvable.
. /src/tests/e2e/common.bash
install_all
install_oxidizr
"$OXIDIZR" use uutils
managed_applets >/etc/oxidizr-probe.list

cat >/usr/local/bin/oxidizr-probe <<'PROBE'
#!/bin/sh
# Runs every managed applet mid-transaction; records what does not resolve.
while IFS= read -r a; do
    [ -x "/usr/bin/$a" ] || echo "$1 $a" >>/var/tmp/unresolvable
done </etc/oxidizr-probe.list
echo "$1" >>/var/tmp/probes-ran
PROBE
chmod 755 /usr/local/bin/oxidizr-probe
for when in PreTransaction PostTransaction; do
    # 50- sorts after our 10- pre hooks; 00- before our 90- post hook.
    name=$([ $when = PreTransaction ] && echo 50-probe-pre || echo 00-probe-post)
    cat >/usr/share/libalpm/hooks/$name.hook <<HOOK
[Trigger]
Operation = Remove
Type = Package
Target = uutils-coreutils
[Action]
When = $when
Exec = /usr/local/bin/oxidizr-probe $when
HOOK
done

step "pacman -R uutils-coreutils"
pacman -R --noconfirm uutils-coreutils 2>&1 | tee /tmp/pacman.out
[ "$(wc -l </var/tmp/probes-ran)" = 2 ] || fail "the probes did not both run"
if [ -s /var/tmp/unresolvable ]; then cat /var/tmp/unresolvable; fail "applets were unresolvable mid-transaction"; fi
echo "probes: every applet resolved before and after pacman deleted the uu-* files"
grep -q "moved to GNU for the removal" /tmp/pacman.out || fail "the pre hook did not say it moved applets to GNU"
every_applet_resolves
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU afterwards"
[ "$(readlink /usr/lib/oxidizr-arch/active/bin/find)" = /usr/bin/uu-find ] || fail "find should still be uutils (uutils-findutils stays)"
expect_exit 0 "$OXIDIZR" verify
