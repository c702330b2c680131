#!/usr/bin/env bash
# (d) pacman -R oxidizr-arch -> pristine: pacman -Qkk coreutils findutils
# clean, nothing of ours left in /usr/bin, the GNU inodes back.
. /src/tests/e2e/common.bash
install_all
inode_table >/tmp/inodes.before
install_oxidizr
"$OXIDIZR" use uutils
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not uutils"
# A repair (of a deleted link) creates the quarantine directory on the way.
rm /usr/bin/cat
"$OXIDIZR" verify --repair >/dev/null

step "pacman -R oxidizr-arch"
pacman -R --noconfirm oxidizr-arch 2>&1 | tee /tmp/pacman.out
grep -q "restored .* pristine GNU files before its removal" /tmp/pacman.out || fail "the pre hook did not restore"
[ ! -e /usr/bin/oxidizr-hook ] || fail "the binary is still there"
pacman -Qkk coreutils findutils >/tmp/qkk 2>&1 || { cat /tmp/qkk; fail "pacman -Qkk reports problems"; }
grep "altered files" /tmp/qkk
[ -z "$(find /usr/bin -lname '/usr/lib/oxidizr-arch/*')" ] || fail "links of ours remain in /usr/bin"
inode_table >/tmp/inodes.after
diff -u /tmp/inodes.before /tmp/inodes.after || fail "not the same GNU inodes"
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU"
for d in generations store profiles; do
    [ ! -e "/usr/lib/oxidizr-arch/$d" ] || fail "/usr/lib/oxidizr-arch/$d was left behind"
done
[ ! -e /usr/lib/oxidizr-arch/active ] || fail "active was left behind"
# Nothing is left of it: the empty directory itself goes too (it is ours,
# not the package's: pacman would not remove it).
[ ! -e /usr/lib/oxidizr-arch ] || fail "left behind: /usr/lib/oxidizr-arch with: $(ls -A /usr/lib/oxidizr-arch | tr '\n' ' ')"
[ -d /usr/lib ] || fail "/usr/lib is gone"
