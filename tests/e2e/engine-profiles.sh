#!/usr/bin/env bash
# use uutils / use gnu / pins / disable on a real pacman-managed root.
. /src/tests/e2e/common.bash
install_all
inode_table >/tmp/inodes.before

step "use uutils"
"$OXIDIZR" use uutils
"$OXIDIZR" status --json >/tmp/status.json
n_uu=0
while IFS= read -r a; do
    [ "$(readlink "/usr/bin/$a")" = "/usr/lib/oxidizr-arch/active/bin/$a" ] || fail "/usr/bin/$a is not our link"
    target=$(readlink "/usr/lib/oxidizr-arch/active/bin/$a")
    if jq -e --arg a "$a" '[.families[].applets[] | select(.name == $a and .uutils != null)] | length == 1' /tmp/status.json >/dev/null; then
        [ "$target" = "/usr/bin/uu-$a" ] || fail "$a should be uutils, is $target"
        n_uu=$((n_uu + 1))
    else
        case $target in /usr/lib/oxidizr-arch/store/gnu/*/"$a") ;; *) fail "$a should be GNU from the store, is $target" ;; esac
    fi
    [ -x "/usr/bin/$a" ] || fail "/usr/bin/$a does not resolve to an executable"
done < <(managed_applets)
echo "$n_uu applets on uutils"
[ "$n_uu" -gt 80 ] || fail "too few uutils applets: $n_uu"
/usr/bin/ls --version | head -1 | tee /tmp/v; grep -qi uutils /tmp/v || fail "ls --version does not say uutils"
/usr/bin/find --version | head -1
expect_exit 0 "$OXIDIZR" verify

step "verify changes nothing: it passes on read-only trees (the boot unit runs it under ProtectSystem=strict)"
ro_dirs="/usr/bin /usr/lib/oxidizr-arch /var/lib/oxidizr-arch /var/log/oxidizr-arch"
for d in $ro_dirs; do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done
expect_exit 0 "$OXIDIZR" verify
"$OXIDIZR" status >/dev/null || fail "status failed on read-only trees"
"$OXIDIZR" generations >/dev/null || fail "generations failed on read-only trees"
for d in $ro_dirs; do umount -l "$d"; done

step "canary: GNU first on PATH while uutils is active (the escape hatch)"
"$OXIDIZR" canary -- ls --version >/tmp/canary.out 2>/tmp/canary.err || { cat /tmp/canary.err; fail "canary failed"; }
grep -q "GNU coreutils" /tmp/canary.out || { cat /tmp/canary.out; fail "canary did not put GNU first"; }
grep -q "canary: GNU commands first on PATH" /tmp/canary.err || fail "canary does not say what it does"
[ "$("$OXIDIZR" canary -- sh -c 'echo $OXIDIZR_CANARY')" = 1 ] || fail "canary shell lacks OXIDIZR_CANARY"
expect_exit 3 "$OXIDIZR" canary -- sh -c 'exit 3'
# --shell: the admin's $SHELL with GNU first on PATH (here fed its commands on stdin).
printf 'ls --version | head -1\necho "canary=$OXIDIZR_CANARY"\nexit 4\n' >/tmp/canary.in
got=0
SHELL=/bin/bash "$OXIDIZR" canary --shell </tmp/canary.in >/tmp/canary.out 2>/dev/null || got=$?
[ "$got" = 4 ] || fail "canary --shell did not pass the shell's exit code through (got $got)"
grep -q "GNU coreutils" /tmp/canary.out || { cat /tmp/canary.out; fail "canary --shell did not put GNU first"; }
grep -qx "canary=1" /tmp/canary.out || fail "canary --shell lacks OXIDIZR_CANARY"

step "use uutils again is a no-op"
"$OXIDIZR" use uutils | tee /tmp/again
grep -q "already active" /tmp/again || fail "second use is not a no-op"

step "use gnu"
"$OXIDIZR" use gnu
/usr/bin/ls --version | head -1 | tee /tmp/v; grep -q "GNU coreutils" /tmp/v || fail "ls is not GNU"
/usr/bin/find --version | head -1 | grep -q "GNU findutils" || fail "find is not GNU"
expect_exit 0 "$OXIDIZR" verify

step "pin ls and sort, then use uutils: they stay GNU"
"$OXIDIZR" pin ls sort
"$OXIDIZR" use uutils
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "pinned ls is not GNU"
/usr/bin/sort --version | head -1 | grep -q "GNU coreutils" || fail "pinned sort is not GNU"
/usr/bin/cat --version | head -1 | grep -qi uutils || fail "cat is not uutils"
"$OXIDIZR" unpin ls
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "unpinned ls is not uutils"
expect_exit 0 "$OXIDIZR" verify

step "generations and rollback"
"$OXIDIZR" generations
"$OXIDIZR" rollback
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "rollback did not bring back the pinned-ls generation"

step "disable: the same inodes as before the first use, pacman -Qkk clean"
"$OXIDIZR" disable
inode_table >/tmp/inodes.after
diff -u /tmp/inodes.before /tmp/inodes.after || fail "inodes differ after disable"
pacman -Qkk coreutils findutils >/tmp/qkk 2>&1 || { cat /tmp/qkk; fail "pacman -Qkk reports problems"; }
grep -E "0 altered files" /tmp/qkk
[ -z "$(find /usr/bin -lname '/usr/lib/oxidizr-arch/*')" ] || fail "links of ours remain in /usr/bin"
expect_exit 0 "$OXIDIZR" verify
echo "facts: $(wc -l </var/log/oxidizr-arch/facts.jsonl) lines"
