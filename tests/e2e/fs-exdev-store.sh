#!/usr/bin/env bash
# The store on another filesystem than /usr/bin (EXDEV): /usr/lib/oxidizr-arch
# is a loop-mounted ext4 before the first `use`. Harvest and restore go
# through the degraded copy path (bytes, owner, mode, mtime, xattrs kept),
# say so in the harvest fact, and use uutils / use gnu / disable work, with a
# clean pacman -Qkk after disable.
. /src/tests/e2e/common.bash
install_all

step "mount a fresh ext4 at /usr/lib/oxidizr-arch"
img=$(mktemp /var/tmp/exdev-store.XXXXXX.img)
truncate -s 256M "$img"
mkfs.ext4 -q -F "$img"
mkdir -p /usr/lib/oxidizr-arch
mount -o loop "$img" /usr/lib/oxidizr-arch
trap 'umount /usr/lib/oxidizr-arch 2>/dev/null || umount -l /usr/lib/oxidizr-arch; rm -f "$img"' EXIT
[ "$(stat -c %d /usr/lib/oxidizr-arch)" != "$(stat -c %d /usr/bin)" ] || fail "the store is on the same filesystem"

# meta_table: "applet sha256 mode uid gid mtime" of what /usr/bin/<applet> resolves to.
meta_table() {
    managed_applets | while IFS= read -r a; do
        printf '%s %s %s\n' "$a" "$(sha256sum <"/usr/bin/$a" | cut -d' ' -f1)" "$(stat -L -c '%a %u %g %Y' "/usr/bin/$a")"
    done
}
meta_table >/tmp/meta.before
n=$(managed_applets | wc -l)

step "use uutils: every GNU binary copied into the store, reported degraded"
"$OXIDIZR" use uutils
harvest=$(jq -r 'select(.stage == "harvest") | .decision' /var/log/oxidizr-arch/facts.jsonl | tail -1)
echo "harvest fact: $harvest"
[ "$harvest" = "$n harvested, 0 already stored, $n degraded; $n match pacman's mtree, 0 without a record" ] \
    || fail "the harvest fact does not report $n degraded copies, each matching pacman's mtree"
while IFS= read -r a; do
    s=$(ls -d /usr/lib/oxidizr-arch/store/gnu/*/"$a")
    [ "$(stat -c %d "$s")" != "$(stat -c %d /usr/bin)" ] || fail "$s is not on the store's filesystem"
    want=$(awk -v a="$a" '$1 == a { print $2, $3, $4, $5, $6 }' /tmp/meta.before)
    got="$(sha256sum <"$s" | cut -d' ' -f1) $(stat -c '%a %u %g %Y' "$s")"
    [ "$got" = "$want" ] || fail "the stored copy of $a differs: $got, expected $want"
done < <(managed_applets)
every_applet_resolves
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not uutils"
expect_exit 0 "$OXIDIZR" verify

step "use gnu: the applets run the stored copies"
"$OXIDIZR" use gnu
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU"
/usr/bin/find --version | head -1 | grep -q "GNU findutils" || fail "find is not GNU"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "disable: the same bytes and metadata back, pacman -Qkk clean"
"$OXIDIZR" disable
meta_table >/tmp/meta.after
diff -u /tmp/meta.before /tmp/meta.after || fail "bytes or metadata differ after disable"
pacman -Qkk coreutils findutils >/tmp/qkk 2>&1 || { cat /tmp/qkk; fail "pacman -Qkk reports problems"; }
[ "$(grep -c ', 0 altered files' /tmp/qkk)" = 2 ] || { cat /tmp/qkk; fail "pacman -Qkk: altered files"; }
[ -z "$(find /usr/bin -lname '/usr/lib/oxidizr-arch/*')" ] || fail "links of ours remain in /usr/bin"
expect_exit 0 "$OXIDIZR" verify
echo "fs-exdev-store: $n applets through the EXDEV copy path"
