#!/usr/bin/env bash
# Hostile applet names: a GNU coreutils package that also ships commands
# named with a space, non-ASCII letters, shell metacharacters and a leading
# dash (besides GNU's own `[`), and a uutils package with counterparts for
# some of them. use uutils / pin / use gnu / disable must treat them like
# any other applet: linked, smoke-tested, restored to the very inodes, a
# clean pacman -Qkk; no name is ever interpreted by a shell.
. /src/tests/e2e/common.bash
cd /tmp

gnu_extra='my cmd=/usr/bin/date
ünïcödé=/usr/bin/uname
日本=/usr/bin/nproc
x;touch pwned=/usr/bin/hostid
x$(touch pwned2)=/usr/bin/logname
-dash=/usr/bin/whoami'
uu_extra='uu-my cmd=/usr/lib/cargo/bin/findutils/xargs
uu-ünïcödé=/usr/lib/cargo/bin/findutils/find'
weird=('my cmd' 'ünïcödé' '日本' 'x;touch pwned' 'x$(touch pwned2)' '-dash' '[')

step "install coreutils and uutils-coreutils with the hostile names"
pacman_U "$(MKPKG_EXTRA_BIN=$gnu_extra /src/test-orch/mkpkg coreutils 9.10-1 "$PKGS")" \
    "$(mkpkg findutils 4.11.0-1)" \
    "$(MKPKG_EXTRA_BIN=$uu_extra /src/test-orch/mkpkg uutils-coreutils 0.12.0-1 "$PKGS")" \
    "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null
for a in "${weird[@]}"; do
    managed_applets | grep -qxF -- "$a" || fail "'$a' is not among the managed applets"
    [ -f "/usr/bin/$a" ] || fail "/usr/bin/$a was not installed"
done
inode_table >/tmp/inodes.before

no_injection() {
    local p
    for p in /pwned /pwned2 /tmp/pwned /tmp/pwned2 /root/pwned /root/pwned2 /usr/bin/pwned; do
        [ ! -e "$p" ] || fail "a name was run through a shell: $p exists"
    done
}

step "use uutils"
"$OXIDIZR" use uutils
"$OXIDIZR" status --json >/tmp/status.json
for a in "${weird[@]}"; do
    [ "$(readlink -- "/usr/bin/$a")" = "/usr/lib/oxidizr-arch/active/bin/$a" ] || fail "/usr/bin/$a is not our link"
    jq -e --arg a "$a" '[.families[].applets[] | select(.name == $a)] | length == 1' /tmp/status.json >/dev/null ||
        fail "status --json does not list '$a'"
done
[ "$(readlink "/usr/lib/oxidizr-arch/active/bin/my cmd")" = "/usr/bin/uu-my cmd" ] || fail "'my cmd' is not uutils"
[ "$(readlink /usr/lib/oxidizr-arch/active/bin/ünïcödé)" = /usr/bin/uu-ünïcödé ] || fail "ünïcödé is not uutils"
[ "$(readlink '/usr/lib/oxidizr-arch/active/bin/[')" = '/usr/bin/uu-[' ] || fail "[ is not uutils"
case $(readlink /usr/lib/oxidizr-arch/active/bin/日本) in
/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1/日本) ;;
*) fail "日本 (no uutils counterpart) is not the stored GNU file" ;;
esac
"/usr/bin/my cmd" --version | grep -q '^xargs' || fail "'my cmd' does not run the uutils counterpart"
/usr/bin/日本 --version | grep -q 'GNU coreutils' || fail "日本 does not run GNU"
'/usr/bin/[' 1 = 1 ']' || fail "[ 1 = 1 ] failed"
/usr/bin/-dash --version | grep -q 'GNU coreutils' || fail "-dash does not run GNU"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify
while IFS= read -r line; do
    jq -e . <<<"$line" >/dev/null || fail "facts.jsonl has a line that is not JSON: $line"
done </var/log/oxidizr-arch/facts.jsonl
no_injection

step "pin 'my cmd' to GNU, then unpin it"
"$OXIDIZR" pin 'my cmd'
"/usr/bin/my cmd" --version | grep -q 'GNU coreutils' || fail "pinned 'my cmd' is not GNU"
"$OXIDIZR" unpin 'my cmd'
"/usr/bin/my cmd" --version | grep -q '^xargs' || fail "unpinned 'my cmd' is not uutils"
for bad in 'a/b' '..' ''; do
    expect_exit 10 "$OXIDIZR" pin "$bad"
done

step "use gnu"
"$OXIDIZR" use gnu
"/usr/bin/my cmd" --version | grep -q 'GNU coreutils' || fail "'my cmd' is not GNU"
/usr/bin/ünïcödé --version | grep -q 'GNU coreutils' || fail "ünïcödé is not GNU"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "disable: the very inodes, pacman -Qkk clean"
"$OXIDIZR" disable
inode_table >/tmp/inodes.after
diff -u /tmp/inodes.before /tmp/inodes.after || fail "inodes differ after disable"
pacman -Qkk coreutils findutils >/tmp/qkk 2>&1 || { cat /tmp/qkk; fail "pacman -Qkk reports problems"; }
[ "$(grep -c ', 0 altered files' /tmp/qkk)" = 2 ] || { cat /tmp/qkk; fail "pacman -Qkk: altered files"; }
[ -z "$(find /usr/bin -lname '/usr/lib/oxidizr-arch/*')" ] || fail "links of ours remain in /usr/bin"
no_injection
echo "hostile-names: ${#weird[@]} hostile names through use uutils, pin, use gnu, disable"
