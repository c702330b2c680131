#!/usr/bin/env bash
# The GNU store is checked against pacman's own record, not only against
# our sidecars: the sha256digest of each file in the package's local mtree
# (/var/lib/pacman/local/<pkg>-<ver>/mtree, written by pacman 7.1 from the
# package's .MTREE). A stored file changed to other bytes *with its sidecar
# rewritten to match* (a forged sidecar) is found by verify, named with its
# package and file; verify --repair puts pacman's bytes back from the package
# cache (not the forged ones, not a cached package carrying them) and
# corrects the sidecar; a GNU file changed at
# /usr/bin after pacman installed it is refused by the harvest (E_OWNERSHIP)
# before anything changes.
. /src/tests/e2e/common.bash
install_all
cache=/var/cache/pacman/pkg
good=$(mkpkg coreutils 9.10-1)
pristine=/opt/oxidizr-testbed/gnu
store=/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1
sidecars=/var/lib/oxidizr-arch/sidecars
facts=/var/log/oxidizr-arch/facts.jsonl

step "premise: pacman recorded a sha256digest for /usr/bin/stty, the pristine file's"
mtree=$(ls -d /var/lib/pacman/local/coreutils-9.10-1)/mtree
[ -f "$mtree" ] || fail "pacman wrote no local mtree for coreutils"
recorded=$(zcat "$mtree" | sed -n 's|^\./usr/bin/stty .*sha256digest=\([0-9a-f]*\).*|\1|p')
[ "$recorded" = "$(sha256sum <"$pristine/stty" | cut -d' ' -f1)" ] || fail "mtree records '$recorded' for stty"

step "use uutils: every harvested file matches pacman's mtree"
"$OXIDIZR" use uutils >/dev/null
n=$(managed_applets | wc -l)
harvest=$(jq -r 'select(.stage == "harvest") | .decision' $facts | tail -1)
[ "$harvest" = "$n harvested, 0 already stored, 0 degraded; $n match pacman's mtree, 0 without a record" ] \
    || fail "harvest fact: $harvest"
expect_exit 0 "$OXIDIZR" verify

step "a forged sidecar: the stored stty changed (same size) and its sidecar rewritten to match"
size=$(stat -c %s "$store/stty")
printf '\001' | dd of="$store/stty" bs=1 seek=$((size - 8)) conv=notrunc status=none
cmp -s "$store/stty" "$pristine/stty" && fail "precondition: the stored stty did not change"
forged=$(sha256sum <"$store/stty" | cut -d' ' -f1)
jq --arg s "$forged" '(.. | objects | select(has("sha256"))) |= (.sha256 = $s)' "$sidecars/stty.json" >/tmp/stty.json
mv /tmp/stty.json "$sidecars/stty.json"
grep -q "\"sha256\": *\"$forged\"" "$sidecars/stty.json" || fail "precondition: the sidecar was not forged"

step "verify finds it through pacman's digest, naming the package and the file"
expect_exit 1 "$OXIDIZR" verify
{ "$OXIDIZR" verify 2>&1 || true; } | tee /tmp/verify.out
grep -q "problem \[store-not-pacmans\]: $store/stty has sha256 $forged, but pacman's record of coreutils 9.10-1 (its local mtree) says $recorded for /usr/bin/stty" /tmp/verify.out \
    || fail "verify does not report the forged file against pacman's record"
grep -q 'store-damaged' /tmp/verify.out && fail "the sidecar check should be satisfied by the forgery (premise)"
[ "$(grep -c 'problem \[store-not-pacmans\]' /tmp/verify.out)" = 1 ] || fail "exactly one file is not pacman's"

step "verify --repair: pacman's bytes back from the package cache, the sidecar corrected"
cp "$good" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
"$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "verify --repair failed"; }
cat /tmp/repair.out
grep -q "refetched $store/stty from $cache/coreutils-9.10-1-x86_64.pkg.tar.zst" /tmp/repair.out || fail "stty not refetched"
cmp -s "$store/stty" "$pristine/stty" || fail "the stored stty is not pacman's bytes"
grep -q "\"sha256\": *\"$recorded\"" "$sidecars/stty.json" || fail "the sidecar does not record pacman's sha256"
expect_exit 0 "$OXIDIZR" verify

step "a cached package with the forged bytes is not pacman's either: not used"
cp "$store/stty" /tmp/stty.good
size=$(stat -c %s /tmp/stty.good)
cp /tmp/stty.good /tmp/stty.forged
printf '\001' | dd of=/tmp/stty.forged bs=1 seek=$((size - 8)) conv=notrunc status=none
cp "$(MKPKG_EXTRA_BIN="stty=/tmp/stty.forged" mkpkg coreutils 9.10-1)" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
cp /tmp/stty.forged "$store/stty.new" && mv "$store/stty.new" "$store/stty"
jq --arg s "$forged" '(.. | objects | select(has("sha256"))) |= (.sha256 = $s)' "$sidecars/stty.json" >/tmp/stty.json
mv /tmp/stty.json "$sidecars/stty.json"
got=0
"$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || got=$?
cat /tmp/repair.out
[ "$got" = 1 ] || fail "verify --repair exited $got, expected 1"
grep -q "cannot refetch $store/stty: usr/bin/stty of $cache/coreutils-9.10-1-x86_64.pkg.tar.zst has sha256 $forged, expected the recorded $recorded" /tmp/repair.out \
    || fail "a package member with the forged bytes was not refused"
cp "$good" "$cache/coreutils-9.10-1-x86_64.pkg.tar.zst"
"$OXIDIZR" verify --repair >/dev/null
expect_exit 0 "$OXIDIZR" verify
cmp -s "$store/stty" "$pristine/stty" || fail "not healed with the good package"

step "a GNU file changed at /usr/bin after pacman wrote it: the harvest refuses it, nothing changes"
"$OXIDIZR" disable >/dev/null
printf 'tampered' >>/usr/bin/stty
ls -l /usr/bin/ls >/tmp/ls.before
expect_exit 20 "$OXIDIZR" use uutils
{ "$OXIDIZR" use uutils 2>&1 || true; } | grep -q "/usr/bin/stty has sha256 [0-9a-f]*, but pacman's record of coreutils 9.10-1 (its local mtree) says $recorded for /usr/bin/stty; it changed after pacman installed it: reinstall coreutils" \
    || fail "the harvest refusal does not name the file, the package and the cure"
[ -f /usr/bin/ls ] && [ ! -L /usr/bin/ls ] || fail "/usr/bin/ls changed although the harvest refused"
[ ! -e /usr/lib/oxidizr-arch/active ] || fail "active exists after a refused enable"

step "reinstalling the package heals it: use uutils goes through"
pacman_U "$good" >/dev/null 2>&1
"$OXIDIZR" use uutils >/dev/null
expect_exit 0 "$OXIDIZR" verify
step "store-mtree: all checks passed"
