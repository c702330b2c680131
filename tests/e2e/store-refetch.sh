#!/usr/bin/env bash
# verify --repair alone heals a damaged stored GNU binary from pacman's
# package cache: only bytes that hash to the recorded sha256 are put back,
# with the recorded mode, owner and mtime, and the sidecars follow the new
# inode (disable then restores a /usr/bin that pacman -Qkk accepts). When
# the cache cannot give the recorded bytes (no package, no such member,
# other bytes) the damaged file is left as it is, the reason is printed,
# verify still exits 1, and reinstalling the package still heals it.
# A repair killed at any of its steps converges on the next repair.
. /src/tests/e2e/common.bash
install_all
cache=/var/cache/pacman/pkg
good=$(mkpkg coreutils 9.10-1)
pristine=/opt/oxidizr-testbed/gnu
store=/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1
sidecars=/var/lib/oxidizr-arch/sidecars

step "use uutils; healthy"
"$OXIDIZR" use uutils >/dev/null
expect_exit 0 "$OXIDIZR" verify
[ -z "$(ls -A "$cache")" ] || fail "the package cache is not empty: $(ls -A "$cache")"
# mode owner group mtime(ns) size of each stored file, as harvested
meta() { stat -c '%a %u %g %.9Y %s' "$1"; }
stty_meta=$(meta "$store/stty")
ls_meta=$(meta "$store/ls")
cmp -s "$store/stty" "$pristine/stty" || fail "the stored stty is not the pristine one to begin with"
sidecar_ino() { sed -n 's/^ *"ino": \([0-9]*\),*$/\1/p' "$sidecars/$1.json"; }
[ "$(sidecar_ino stty)" = "$(stat -c %i "$store/stty")" ] || fail "the sidecar of stty does not record its inode"

# run_repair WANT_EXIT: verify --repair, its output in /tmp/repair.out.
run_repair() {
    local got=0
    "$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || got=$?
    cat /tmp/repair.out
    [ "$got" = "$1" ] || fail "verify --repair exited $got, expected $1"
}
# still_damaged: the damaged stty is untouched and still reported.
still_damaged() {
    cmp -s "$store/stty" /tmp/stty.damaged || fail "repair changed the damaged stty without healing it"
    [ -z "$(ls -A "$store" | grep '^\.oxidizr-tmp' || true)" ] || fail "temporary files left in $store: $(ls -A "$store")"
    expect_exit 1 "$OXIDIZR" verify
    { "$OXIDIZR" verify 2>&1 || true; } | grep -q 'problem \[store-damaged\].*stty' || fail "the damage is no longer reported"
}

step "damage the stored stty: verify reports store-damaged and names the cure"
printf 'garbage' >>"$store/stty"
cp -p "$store/stty" /tmp/stty.damaged
expect_exit 1 "$OXIDIZR" verify
{ "$OXIDIZR" verify 2>&1 || true; } | tee /tmp/verify.out
grep -q "problem \[store-damaged\]: $store/stty changed .*'verify --repair' refetches it from the package cache, else reinstall coreutils" /tmp/verify.out \
    || fail "verify does not report the damage with its cure"

step "no cached package: repair leaves the file, says why, verify still exits 1"
run_repair 1
grep -q "cannot refetch $store/stty: no cached package coreutils-9.10-1 in $cache: reinstall coreutils" /tmp/repair.out \
    || fail "repair does not say that the package is not cached"
still_damaged

step "a cached package without usr/bin/stty: left as is, bsdtar's reason shown"
cp "$(MKPKG_ONLY="ls cat" mkpkg coreutils 9.10-1)" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
run_repair 1
grep -q "cannot refetch $store/stty: cannot extract usr/bin/stty from $cache/coreutils-9.10-1-x86_64.pkg.tar.zst: .*Not found in archive; reinstall coreutils" /tmp/repair.out \
    || fail "repair does not say that the member is missing"
still_damaged

step "a cached package whose usr/bin/stty is other bytes: left as is, the digests shown"
cp "$(MKPKG_EXTRA_BIN="stty=$pristine/ls" mkpkg coreutils 9.10-1)" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
run_repair 1
grep -q "cannot refetch $store/stty: usr/bin/stty of $cache/coreutils-9.10-1-x86_64.pkg.tar.zst is .* the recorded [0-9]* bytes\|has sha256 .*, expected the recorded" /tmp/repair.out \
    || fail "repair does not say that the member differs"
still_damaged

step "the same size but other bytes: the sha256 decides"
# The pristine stty with one byte flipped near the end: same size.
cp "$pristine/stty" /tmp/stty.flipped
size=$(stat -c %s /tmp/stty.flipped)
printf '\001' | dd of=/tmp/stty.flipped bs=1 seek=$((size - 8)) conv=notrunc status=none
cmp -s /tmp/stty.flipped "$pristine/stty" && fail "the flipped copy is not different"
flipped=$(MKPKG_EXTRA_BIN="stty=/tmp/stty.flipped" mkpkg coreutils 9.10-1)
cp "$flipped" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
run_repair 1
grep -q "usr/bin/stty of $cache/coreutils-9.10-1-x86_64.pkg.tar.zst has sha256 [0-9a-f]*, expected the recorded" /tmp/repair.out \
    || fail "repair does not report the sha256 mismatch"
still_damaged

step "no bsdtar on the host: left as is, said so (--json: the refetch is not healed)"
cp "$good" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
mv /usr/bin/bsdtar /usr/bin/bsdtar.hidden
got=0
"$OXIDIZR" --json verify --repair >/tmp/repair.json 2>&1 || got=$?
mv /usr/bin/bsdtar.hidden /usr/bin/bsdtar
cat /tmp/repair.json
[ "$got" = 1 ] || fail "verify --repair without bsdtar exited $got, expected 1"
grep -q '"healed": false' /tmp/repair.json || fail "the JSON does not say the refetch failed"
grep -q 'bsdtar (libarchive) is not installed or not on PATH.*; reinstall coreutils' /tmp/repair.json \
    || fail "repair does not say that bsdtar is missing"
still_damaged

step "the reinstall path (what repair then tells the admin) still heals it"
pacman_U "$good" >/dev/null 2>&1
"$OXIDIZR" verify --repair >/dev/null
expect_exit 0 "$OXIDIZR" verify
cmp -s "$store/stty" "$pristine/stty" || fail "the reinstall did not heal the stored stty"
stty_meta=$(meta "$store/stty")
ls_meta=$(meta "$store/ls")

step "CacheDir from pacman.conf (two CacheDir lines): a wrong x86_64 file, then a good -any one"
cp /etc/pacman.conf /tmp/pacman.conf.orig
cp "$flipped" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
mkdir -p /srv/pkgcache
cp "$good" /srv/pkgcache/coreutils-9.10-1-any.pkg.tar.zst
# One directory per line, no comment after it: pacman(-conf) 7.1 takes the
# whole rest of the line as one path.
sed -i 's|^\[options\]$|[options]\nCacheDir = /var/cache/pacman/pkg/\n# two\nCacheDir = /srv/pkgcache/|' /etc/pacman.conf
printf 'garbage' >>"$store/stty"
expect_exit 1 "$OXIDIZR" verify
run_repair 0
grep -q "refetched $store/stty from /srv/pkgcache/coreutils-9.10-1-any.pkg.tar.zst" /tmp/repair.out \
    || fail "repair did not refetch from the second cache directory"
cmp -s "$store/stty" "$pristine/stty" || fail "the stored stty is not the pristine one"
[ "$(meta "$store/stty")" = "$stty_meta" ] || fail "stty metadata: $(meta "$store/stty"), expected $stty_meta"
expect_exit 0 "$OXIDIZR" verify
cp /tmp/pacman.conf.orig /etc/pacman.conf
rm -rf /srv/pkgcache

step "a repair killed at each of its steps converges on the next repair"
cp "$good" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
for point in refill:after-write refill:after-stage refetch:after-sidecars refill:after-rename; do
    printf 'garbage' >>"$store/stty"
    got=0
    # In a subshell: the kill is reported by it, to /dev/null.
    (OXIDIZR_CRASH_AT=$point "$OXIDIZR" verify --repair >/tmp/crash.out 2>&1) 2>/dev/null || got=$?
    [ "$got" = 137 ] || { cat /tmp/crash.out; fail "verify --repair was not killed at $point (exit $got)"; }
    # Never a half-written stored file: the damaged one or the pristine one.
    { grep -q garbage "$store/stty" && [ "$(stat -c %s "$store/stty")" -gt "$(stat -c %s "$pristine/stty")" ]; } \
        || cmp -s "$store/stty" "$pristine/stty" || fail "killed at $point: the stored stty is neither the damaged nor the pristine one"
    "$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "repair after a kill at $point failed"; }
    expect_exit 0 "$OXIDIZR" verify
    cmp -s "$store/stty" "$pristine/stty" || fail "killed at $point: not healed by the next repair"
    [ "$(sidecar_ino stty)" = "$(stat -c %i "$store/stty")" ] || fail "killed at $point: the sidecar does not record the inode"
    [ -z "$(ls -A "$store" | grep '^\.oxidizr-tmp' || true)" ] || fail "killed at $point: temporaries left: $(ls -A "$store")"
    step "  killed at $point: converged"
done

step "the package cached under its canonical name: repair alone heals a damaged stty and a deleted ls"
printf 'garbage' >>"$store/stty"
rm "$store/ls"
expect_exit 1 "$OXIDIZR" verify
ino_before=$(stat -c %i "$store/stty")
run_repair 0
grep -q "refetched $store/stty from $cache/coreutils-9.10-1-x86_64.pkg.tar.zst" /tmp/repair.out || fail "stty not refetched"
grep -q "refetched $store/ls from $cache/coreutils-9.10-1-x86_64.pkg.tar.zst" /tmp/repair.out || fail "ls not refetched"
expect_exit 0 "$OXIDIZR" verify
for a in stty ls; do
    cmp -s "$store/$a" "$pristine/$a" || fail "the stored $a is not byte-identical to the pristine one"
    [ "$(sidecar_ino $a)" = "$(stat -c %i "$store/$a")" ] || fail "the sidecar of $a does not record the new inode"
done
[ "$(stat -c %i "$store/stty")" != "$ino_before" ] || fail "stty was not replaced by a new file"
[ "$(meta "$store/stty")" = "$stty_meta" ] || fail "stty metadata: $(meta "$store/stty"), expected $stty_meta"
[ "$(meta "$store/ls")" = "$ls_meta" ] || fail "ls metadata: $(meta "$store/ls"), expected $ls_meta"
[ -z "$(ls -A "$store" | grep '^\.oxidizr-tmp' || true)" ] || fail "temporary files left in $store"
grep -q '"stage":"repair".*refetched' /var/log/oxidizr-arch/facts.jsonl || fail "no repair fact"

step "disable: the refetched files go back to /usr/bin and pacman -Qkk is clean"
"$OXIDIZR" disable
for a in stty ls; do
    [ -f "/usr/bin/$a" ] && [ ! -L "/usr/bin/$a" ] || fail "/usr/bin/$a is not a regular file"
    cmp -s "/usr/bin/$a" "$pristine/$a" || fail "/usr/bin/$a is not the pristine file"
done
pacman -Qkk coreutils >/tmp/qkk.out 2>&1 || { cat /tmp/qkk.out; fail "pacman -Qkk coreutils is not clean"; }
cat /tmp/qkk.out
grep -q 'warning' /tmp/qkk.out && fail "pacman -Qkk coreutils warns"
expect_exit 0 "$OXIDIZR" verify
step "store-refetch: all checks passed"
