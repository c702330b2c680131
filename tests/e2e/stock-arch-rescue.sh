#!/usr/bin/env bash
# Issue 12 item 1: a stock Arch box has no busybox (an optdepend at most).
# The rescue check runs GNU's own tools where they are (pacman's file at
# /usr/bin, else the store), in every flow: the first `use`, the post hook
# after coreutils upgrades (the store then also holds older versions), a
# uutils-only upgrade, repair. A refusal names the real cause.
. /src/tests/e2e/common.bash
facts=/var/log/oxidizr-arch/facts.jsonl
last_rescue() { grep '"stage":"preflight"' $facts | tail -1; }

step "the scenario root has no busybox, like Arch's base"
[ ! -e /usr/bin/busybox ] && [ ! -e /bin/busybox ] || fail "precondition: busybox in the scenario root"
install_all
install_oxidizr

step "first use uutils: the rescue check runs pacman's GNU files"
"$OXIDIZR" use uutils >/tmp/use.out 2>&1 || { cat /tmp/use.out; fail "use uutils refused without busybox"; }
last_rescue | grep -q 'rescue toolset: gnu-subset' || fail "no gnu-subset rescue fact: $(last_rescue)"
every_applet_resolves
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not uutils"

for v in 9.11-1 9.12-1; do
    step "pacman -U coreutils $v: the post hook's rescue check passes"
    pacman_U "$(mkpkg coreutils "$v")" >/tmp/pacman.out 2>&1
    grep -q "command failed" /tmp/pacman.out && { cat /tmp/pacman.out; fail "the post hook failed on coreutils $v"; }
    grep -q "oxidizr-arch: profile uutils active" /tmp/pacman.out || { cat /tmp/pacman.out; fail "no success line"; }
    last_rescue | grep -q 'rescue toolset: gnu-subset' || fail "rescue: $(last_rescue)"
    every_applet_resolves
    expect_exit 0 "$OXIDIZR" verify
done

step "a uutils-only upgrade: /usr/bin/ls is our link, the stored GNU tools run"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-2)" >/tmp/pacman.out 2>&1
grep -q "command failed" /tmp/pacman.out && { cat /tmp/pacman.out; fail "the post hook failed on the uutils upgrade"; }
last_rescue | grep -q 'rescue toolset: gnu-subset' || fail "rescue: $(last_rescue)"
[ -L /usr/bin/ls ] || fail "precondition: /usr/bin/ls is our link"
expect_exit 0 "$OXIDIZR" verify

step "verify --repair converges without busybox"
"$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "verify --repair failed"; }
expect_exit 0 "$OXIDIZR" verify
expect_exit 0 "$OXIDIZR" status

step "busybox, installed as the optdepend it is, changes nothing for the switch"
pacman_U "$(mkpkg busybox 1.38.0-1)" >/dev/null
"$OXIDIZR" use gnu >/dev/null
"$OXIDIZR" use uutils >/dev/null
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify
pacman -R --noconfirm busybox >/dev/null

step "a --root whose GNU tools cannot run: refused, naming the cause, nothing created"
r=/tmp/bare-root
mkdir -p $r/var/lib/pacman
pacman --root $r --dbpath $r/var/lib/pacman -U --noconfirm "$(mkpkg coreutils 9.10-1)" >/dev/null 2>&1 \
    || fail "precondition: pacman cannot install coreutils into $r"
[ -f $r/usr/bin/ls ] || fail "precondition: no GNU ls in $r"
expect_exit 10 "$OXIDIZR" --root $r use uutils 2>/tmp/refused.err
cat /tmp/refused.err
grep -q 'error\[E_POLICY\]: no rescue toolset: the GNU core tools do not run' /tmp/refused.err || fail "the refusal does not say the GNU tools do not run"
grep -q "has no /dev/null: mount /dev in the root" /tmp/refused.err || fail "the refusal does not name the missing /dev"
grep -q "install busybox" /tmp/refused.err && fail "the refusal still blames a missing busybox"
[ ! -e $r/usr/lib/oxidizr-arch ] || fail "a refused use created /usr/lib/oxidizr-arch"
[ -f $r/usr/bin/ls ] && [ ! -L $r/usr/bin/ls ] || fail "a refused use changed $r/usr/bin/ls"
step "ok"
