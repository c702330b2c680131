#!/usr/bin/env bash
# Issue 13: the operations that restore or transition check everything
# before their first change.
# (1) One damaged stored GNU binary: `disable` and oxidizr-arch's own
#     pre-remove hook refuse with every damaged copy named and change
#     nothing (they stopped half-way: 81 names restored, 25 still our
#     links, and pacman then aborted on a half GNU, half uutils system).
# (2) A corrupt sidecar met by a pre-transaction transition (a uutils
#     package leaving): refused before `active` moves, pacman aborts.
. /src/tests/e2e/common.bash
lib=/usr/lib/oxidizr-arch
store=$lib/store/gnu/coreutils-9.10-1
sidecars=/var/lib/oxidizr-arch/sidecars
install_all
install_oxidizr
"$OXIDIZR" use uutils >/dev/null
links() { for a in $(managed_applets); do [ -L "/usr/bin/$a" ] && echo "$a"; done | wc -l; }
before=$(links)
[ "$before" -gt 100 ] || fail "premise: only $before managed links"
gen=$(readlink $lib/active)

step "(1) one stored GNU binary damaged (stty): disable refuses and changes nothing"
printf 'damaged' >>"$store/stty"
expect_exit 60 "$OXIDIZR" disable
"$OXIDIZR" disable >/tmp/disable.out 2>&1 || true
grep -q "$store/stty changed" /tmp/disable.out || { cat /tmp/disable.out; fail "the refusal does not name the damaged copy"; }
[ "$(links)" = "$before" ] || fail "disable changed $(( before - $(links) )) names before refusing"
[ "$(readlink $lib/active)" = "$gen" ] || fail "active moved"
"$OXIDIZR" status --json | jq -e '.profile == "uutils"' >/dev/null || fail "the profile changed"

step "(1) pacman -R oxidizr-arch: its pre-remove hook refuses, pacman aborts, nothing changed"
pacman -R --noconfirm oxidizr-arch >/tmp/remove.out 2>&1 && { cat /tmp/remove.out; fail "pacman -R went on"; }
grep -q 'stty' /tmp/remove.out || { cat /tmp/remove.out; fail "pacman's output does not name the damaged copy"; }
pacman -Q oxidizr-arch >/dev/null || fail "oxidizr-arch was removed"
[ "$(links)" = "$before" ] || fail "the pre-remove hook changed $(( before - $(links) )) names before refusing"

step "(1) repaired from the package cache, disable then restores everything"
cp "$(mkpkg coreutils 9.10-1)" /var/cache/pacman/pkg/
"$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "verify --repair failed"; }
"$OXIDIZR" disable >/dev/null
[ "$(links)" = 0 ] || fail "$(links) links left after disable"
pacman -Qkk coreutils findutils >/tmp/qkk.out 2>&1 || { cat /tmp/qkk.out; fail "pacman -Qkk reports changed files"; }

step "(2) a corrupt sidecar; uutils-findutils removed: the transition refuses before active moves"
"$OXIDIZR" use uutils >/dev/null
gen=$(readlink $lib/active)
ngen=$(ls $lib/generations | wc -l)
before=$(links)
echo '{ not json' >"$sidecars/xargs.json"
pacman -R --noconfirm uutils-findutils >/tmp/remove.out 2>&1 && { cat /tmp/remove.out; fail "pacman -R went on"; }
pacman -Q uutils-findutils >/dev/null || fail "uutils-findutils was removed although its pre hook failed"
[ "$(readlink $lib/active)" = "$gen" ] || fail "active moved to $(readlink $lib/active) before the refusal"
[ "$(ls $lib/generations | wc -l)" = "$ngen" ] || fail "a generation was built before the refusal"
[ "$(links)" = "$before" ] || fail "names changed before the refusal"
every_applet_resolves
echo "preflight-all-or-nothing: ok"
