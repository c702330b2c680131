#!/usr/bin/env bash
# Issue 13: two foreign entries of the same name in two generations made
# `verify --repair` fail E_IO once per duplicate (both were moved to the
# same quarantine name). Each now gets its own name; nothing is deleted.
. /src/tests/e2e/common.bash
lib=/usr/lib/oxidizr-arch
install_all
install_oxidizr
"$OXIDIZR" use uutils >/dev/null
"$OXIDIZR" use gnu >/dev/null
gens=$(ls $lib/generations | grep -c '^[0-9]*$')
[ "$gens" -ge 2 ] || fail "premise: only $gens generations"
planted=0
for g in $lib/generations/[0-9]*; do
    [ -L "$g/bin" ] && continue # shares another generation's tree
    echo "planted in $g" >"$g/bin/evil"
    echo "planted beside $g's manifest" >"$g/notes"
    planted=$((planted + 2))
done
[ "$planted" -ge 4 ] || fail "premise: fewer than two generations with their own tree"
step "$planted foreign entries planted (two names, each in every generation)"
expect_exit 1 "$OXIDIZR" verify
"$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "verify --repair failed"; }
expect_exit 0 "$OXIDIZR" verify
n=$(grep -rl '^planted' $lib/quarantine | wc -l)
[ "$n" = "$planted" ] || { ls -la $lib/quarantine; fail "$n of $planted planted entries are in the quarantine"; }
[ -z "$(find $lib/generations -name evil -o -name notes)" ] || fail "a planted entry is still in a generation"
echo "repair-quarantine: ok"
