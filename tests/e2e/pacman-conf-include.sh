#!/usr/bin/env bash
# pacman.conf is read through pacman-conf, the authority on its values:
# a CacheDir set in a file pacman.conf Includes is where verify --repair
# refetches a damaged stored GNU binary from; --config names another
# pacman.conf (a path inside the root). Without pacman-conf the file is
# read by hand (Include not followed) and a warning says so.
. /src/tests/e2e/common.bash
install_all
good=$(mkpkg coreutils 9.10-1)
pristine=/opt/oxidizr-testbed/gnu
store=/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1
pkgfile=coreutils-9.10-1-x86_64.pkg.tar.zst
"$OXIDIZR" use uutils >/dev/null
expect_exit 0 "$OXIDIZR" verify
[ -z "$(ls -A /var/cache/pacman/pkg)" ] || fail "the default package cache is not empty"

# run_repair WANT_EXIT ARGS...: verify --repair, stdout+stderr in /tmp/repair.out.
run_repair() {
    local want=$1 got=0; shift
    "$OXIDIZR" "$@" verify --repair >/tmp/repair.out 2>&1 || got=$?
    cat /tmp/repair.out
    [ "$got" = "$want" ] || fail "verify --repair $* exited $got, expected $want"
}
damage() {
    printf 'garbage' >>"$store/stty"
    expect_exit 1 "$OXIDIZR" verify
}
healed() {
    cmp -s "$store/stty" "$pristine/stty" || fail "$1: the stored stty is not the pristine one"
    expect_exit 0 "$OXIDIZR" verify
}

step "pacman.conf Includes /etc/pacman.d/cache.conf, whose [options] sets CacheDir = /srv/included-cache/"
mkdir -p /srv/included-cache /etc/pacman.d
cp "$good" "/srv/included-cache/$pkgfile"
printf '[options]\nCacheDir = /srv/included-cache/\n' >/etc/pacman.d/cache.conf
sed -i 's|^\[options\]$|[options]\nInclude = /etc/pacman.d/cache.conf|' /etc/pacman.conf
grep -q '^Include = /etc/pacman.d/cache.conf$' /etc/pacman.conf || fail "setup: the Include is not in pacman.conf"
grep -q 'CacheDir' /etc/pacman.conf && fail "setup: pacman.conf itself sets a CacheDir"
# pacman-conf prints the resolved directory (no trailing slash).
[ "$(pacman-conf CacheDir)" = /srv/included-cache ] || fail "setup: pacman-conf CacheDir is $(pacman-conf CacheDir)"

step "verify --repair refetches the damaged stty from the included CacheDir"
damage
run_repair 0
grep -q "refetched $store/stty from /srv/included-cache/$pkgfile" /tmp/repair.out \
    || fail "repair did not refetch from the CacheDir of the included file"
grep -q 'warning' /tmp/repair.out && fail "a warning with pacman-conf installed"
healed "included CacheDir"

step "--config names another pacman.conf (inside the root) whose Include sets another CacheDir"
mkdir -p /srv/alt-cache
cp "$good" "/srv/alt-cache/$pkgfile"
rm "/srv/included-cache/$pkgfile"
printf '[options]\nCacheDir = /srv/alt-cache/\n' >/etc/pacman.d/alt.conf
printf '[options]\nArchitecture = auto\nInclude = /etc/pacman.d/alt.conf\n' >/etc/pacman-alt.conf
damage
run_repair 1
grep -q "cannot refetch $store/stty: no cached package coreutils-9.10-1 in /srv/included-cache: reinstall coreutils" /tmp/repair.out \
    || fail "without --config, repair does not look in pacman.conf's CacheDir only"
run_repair 0 --config /etc/pacman-alt.conf
grep -q "refetched $store/stty from /srv/alt-cache/$pkgfile" /tmp/repair.out \
    || fail "repair --config did not refetch from the CacheDir of that file's Include"
healed "--config"

step "a pacman.conf that pacman-conf refuses (an included CacheDir that does not exist): E_CONFIG, file untouched"
printf '[options]\nCacheDir = /srv/does-not-exist/\n' >/etc/pacman.d/cache.conf
damage
cp -p "$store/stty" /tmp/stty.damaged
run_repair 1
grep -q "cannot refetch $store/stty: pacman-conf --config /etc/pacman.conf (root /) failed (exit status 1): .*failed to resolve path '/srv/does-not-exist/'.*; reinstall coreutils" /tmp/repair.out \
    || fail "repair does not report pacman-conf's refusal"
cmp -s "$store/stty" /tmp/stty.damaged || fail "the damaged stty was changed"

step "no pacman-conf: pacman.conf is read by hand, the Include is not followed, and a warning says so"
printf '[options]\nCacheDir = /srv/included-cache/\n' >/etc/pacman.d/cache.conf
cp "$good" "/srv/included-cache/$pkgfile"
mv /usr/bin/pacman-conf /usr/bin/pacman-conf.hidden
got=0
"$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || got=$?
mv /usr/bin/pacman-conf.hidden /usr/bin/pacman-conf
cat /tmp/repair.out
[ "$got" = 1 ] || fail "repair without pacman-conf exited $got, expected 1 (the Include is not followed)"
grep -q "warning: /usr/bin/pacman-conf is not installed: read /etc/pacman.conf by hand, Include directives not followed" /tmp/repair.out \
    || fail "no warning that pacman.conf was read by hand"
grep -q "no cached package coreutils-9.10-1 in /var/cache/pacman/pkg: reinstall coreutils" /tmp/repair.out \
    || fail "the hand parser did not fall back to the default CacheDir"

step "pacman-conf back: the repair converges"
run_repair 0
grep -q "refetched $store/stty from /srv/included-cache/$pkgfile" /tmp/repair.out || fail "not refetched"
healed "after the fallback"
step "pacman-conf-include: all checks passed"
