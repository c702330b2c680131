#!/usr/bin/env bash
# A family of more than 2,000 commands under the default fd limit (ulimit -n
# 1024, soft and hard: the binary cannot raise it): use uutils, a coreutils
# upgrade through the real post-transaction hook, verify and disable all
# succeed and every name resolves at each step. Every batch (sidecars,
# harvest, take-over, restore) keeps a bounded number of files open.
. /src/tests/e2e/common.bash
extra_n=2100

step "a coreutils package with $extra_n extra commands (tiny scripts that print a version)"
mkdir -p /opt/large-family
printf '#!/bin/sh\necho "large-family 1.0"\n' >/opt/large-family/cmd
chmod 0755 /opt/large-family/cmd
extra=$(seq -f 'xtra%04g=/opt/large-family/cmd' 1 "$extra_n")
core=$(MKPKG_EXTRA_BIN=$extra mkpkg coreutils 9.10-1)
core_next=$(MKPKG_EXTRA_BIN=$extra mkpkg coreutils 9.11-1)
pacman_U "$core" "$(mkpkg findutils 4.11.0-1)" \
    "$(mkpkg uutils-coreutils 0.12.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null
install_oxidizr
n=$(managed_applets | wc -l)
[ "$n" -gt "$extra_n" ] || fail "only $n managed applets, expected more than $extra_n"
[ "$(ql_bin coreutils | grep -c '^xtra')" = "$extra_n" ] || fail "pacman does not own the $extra_n extra commands"

# all_links: every managed name is our link and resolves to an executable.
all_links() {
    local a bad=0
    while IFS= read -r a; do
        [ "$(readlink "/usr/bin/$a")" = "/usr/lib/oxidizr-arch/active/bin/$a" ] || { bad=1; echo "not our link: /usr/bin/$a"; break; }
    done < <(managed_applets)
    [ "$bad" = 0 ] || fail "$1: a managed name is not our link"
    every_applet_resolves
}

ulimit -n 1024
[ "$(ulimit -Sn)" = 1024 ] && [ "$(ulimit -Hn)" = 1024 ] || fail "cannot set the fd limit to 1024"

step "use uutils ($n names, ulimit -n 1024)"
"$OXIDIZR" use uutils >/tmp/use.out 2>&1 || { tail -20 /tmp/use.out; fail "use uutils failed"; }
tail -3 /tmp/use.out
all_links "use uutils"
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not uutils"
[ "$(/usr/bin/xtra2100 --version)" = "large-family 1.0" ] || fail "xtra2100 does not run"

step "pacman -U coreutils 9.11-1: the post-transaction hook rebuilds all $n names"
pacman_U "$core_next" >/tmp/pacman.out 2>&1 || { tail -30 /tmp/pacman.out; fail "pacman -U failed"; }
tail -5 /tmp/pacman.out
grep -q "command failed" /tmp/pacman.out && fail "the post-transaction hook failed"
grep -q "oxidizr-arch: profile uutils active: generation" /tmp/pacman.out || fail "no success line from the hook"
[ -f /usr/lib/oxidizr-arch/store/gnu/coreutils-9.11-1/xtra2100 ] || fail "the store lacks the new xtra2100"
all_links "after the upgrade"

step "verify"
"$OXIDIZR" verify >/tmp/verify.out 2>&1 || { tail -20 /tmp/verify.out; fail "verify failed"; }

step "disable: every name is pacman's regular file again"
"$OXIDIZR" disable >/tmp/disable.out 2>&1 || { tail -20 /tmp/disable.out; fail "disable failed"; }
while IFS= read -r a; do
    [ -f "/usr/bin/$a" ] && [ ! -L "/usr/bin/$a" ] || fail "/usr/bin/$a is not a regular file after disable"
done < <(managed_applets)
every_applet_resolves
pacman -Qkk coreutils >/tmp/qkk.out 2>&1 || { tail -5 /tmp/qkk.out; fail "pacman -Qkk coreutils is not clean"; }
grep -q warning /tmp/qkk.out && { grep warning /tmp/qkk.out | head -5; fail "pacman -Qkk coreutils warns"; }
step "large-family: all checks passed"
