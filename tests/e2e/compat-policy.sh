#!/usr/bin/env bash
# Issue 14, the policies on the testbed's real uutils 0.12 vs GNU 9.10:
# - `compat` before the first `use`: exit 0, nothing written (no state
#   directory, no facts, /usr/bin untouched), --json parses and names applets;
# - `use uutils` (recommended): cp, mv, rm stay GNU, kept by the policy list;
#   every kept applet has a stated reason;
# - `--policy all`: every applet with a counterpart is uutils, nothing kept,
#   and compat still reports the divergences;
# - `--policy strict` keeps at least what recommended keeps;
# - `unpin cp` overrides the policy (cp is uutils, status lists the
#   override), `pin cp` puts it back;
# - config.toml `policy = "all"` is what `use uutils` without --policy does;
# - `--policy bogus` is a usage error that changes nothing.
# A uutils applet that fails its plain smoke probe is not "kept" but fails
# the smoke and rolls back (E_SMOKE): tests/e2e/hook-b-broken-uutils.sh; one
# assertion here that the policy does not turn it into a keep.
# The product defaults (policy recommended, differential checks on), not
# the policy-all configuration of the older scenarios (common.bash).
OXIDIZR_E2E_DEFAULT_CONFIG=1
. /src/tests/e2e/common.bash
state_dir=/var/lib/oxidizr-arch
facts=/var/log/oxidizr-arch/facts.jsonl

version() { local v; v=$(/usr/bin/"$1" --version 2>/dev/null) || true; printf '%s\n' "${v%%$'\n'*}"; }
is_gnu() { case $(version "$1") in *GNU*) return 0 ;; *) return 1 ;; esac; }
is_uutils() { local v; v=$(version "$1"); [ -n "$v" ] && case $v in *GNU*) false ;; *) true ;; esac; }
kept_set() { "$OXIDIZR" status --json | jq -r '.kept | keys[]' | LC_ALL=C sort; }
# snapshot: what a read-only command must not change.
snapshot() {
    local d
    for d in /usr/bin /var/lib/oxidizr-arch /var/log/oxidizr-arch /usr/lib/oxidizr-arch /etc/oxidizr-arch; do
        [ -e "$d" ] || { echo "absent $d"; continue; }
        find "$d" -printf '%p %y %i %s %T@ %l\n' | LC_ALL=C sort
    done
    cksum /var/log/pacman.log
}

install_all
install_oxidizr

step "compat before the first use: read-only, exit 0"
[ ! -e "$state_dir/state.json" ] || fail "premise: a state file exists before the first use"
snapshot >/tmp/before
"$OXIDIZR" compat >/tmp/compat.txt || fail "compat exited $?"
head -30 /tmp/compat.txt
head -1 /tmp/compat.txt | grep -q '^==> compat: ' || fail "compat text has no '==> compat:' header"
grep -Eq '^  cp +keep ' /tmp/compat.txt || fail "compat text has no 'cp keep' line"
grep -Eq '^  [^ ]+ +switch ' /tmp/compat.txt || fail "compat text has no 'APPLET switch' line"
"$OXIDIZR" compat --json >/tmp/compat.json || fail "compat --json exited $?"
jq -e --argjson min 300 '.policy == "recommended" and (.locales | index("C") != null) and .cases >= $min and .executed > 0
    and (.applets | has("ls") and has("cp") and has("date") and has("sort") and has("find") and has("xargs"))' \
    /tmp/compat.json >/dev/null || fail "compat --json lacks the policy, the locales, >= 300 cases or the applets: $(jq -c 'del(.applets)' /tmp/compat.json)"
jq -e '.applets | to_entries | all(.value | has("decision") and has("kept_by") and has("reason") and has("equal") and has("diverged") and has("broken") and has("divergences"))' \
    /tmp/compat.json >/dev/null || fail "an applet entry lacks a field"
jq -e '.applets.cp | .decision == "keep" and .kept_by == "policy-list" and (.source | startswith("http"))' /tmp/compat.json >/dev/null \
    || fail "compat: cp is not kept by the policy list with a source"
snapshot >/tmp/after
diff /tmp/before /tmp/after || fail "compat changed the root"
[ ! -e "$state_dir" ] || [ -z "$(ls -A "$state_dir")" ] || fail "compat created state in $state_dir: $(ls -A "$state_dir")"
# The default policy keeps nothing without a stated reason.
jq -e '.applets | to_entries | all(.value.decision == "switch" or (.value.kept_by != null and (.value.reason | length) > 0))' \
    /tmp/compat.json >/dev/null || fail "compat keeps an applet without a reason"
jq -r '.applets | to_entries[] | select(.value.decision == "keep") | "\(.key) \(.value.kept_by): \(.value.reason)"' /tmp/compat.json

step "use uutils (recommended, the default)"
"$OXIDIZR" use uutils | tee /tmp/use.out
for a in cp mv rm; do
    is_gnu "$a" || fail "$a is not GNU under recommended: $(version "$a")"
    grep -q "==> keeping $a on GNU: policy list" /tmp/use.out || fail "use printed no 'keeping $a on GNU: policy list' line"
done
# Every applet with a counterpart that is not kept switched.
for a in $(jq -r '.applets | to_entries[] | select(.value.decision == "switch") | .key' /tmp/compat.json); do
    ! is_gnu "$a" || fail "$a is GNU under recommended, compat said switch"
done
"$OXIDIZR" status --json >/tmp/status.json
jq -e '.policy == "recommended" and (.kept.cp.kept_by == "policy-list") and (.kept.mv.kept_by == "policy-list")
    and (.kept.rm.kept_by == "policy-list") and (.kept.cp.source | startswith("http"))' /tmp/status.json >/dev/null \
    || fail "status --json: not policy recommended with cp, mv, rm kept by the policy list: $(jq -c '{policy, kept}' /tmp/status.json)"
jq -e '.kept | to_entries | all(.value.kept_by != null and (.value.reason | length) > 0)' /tmp/status.json >/dev/null \
    || fail "status lists a kept applet without a reason"
# The state and compat agree on what recommended keeps.
diff <(kept_set) <(jq -r '.applets | to_entries[] | select(.value.decision == "keep") | .key' /tmp/compat.json | LC_ALL=C sort) \
    || fail "use uutils kept another set than compat announced"
"$OXIDIZR" status | grep -q '^==> .*kept on GNU: .*cp (policy list)' || fail "status text has no 'kept on GNU: ... cp (policy list)'"
jq -e 'select(.stage == "keep" and .applet == "cp" and .kept_by == "policy-list")' "$facts" >/dev/null || fail "no keep fact for cp"
jq -e 'select(.stage == "compat")' "$facts" >/dev/null || fail "no compat fact"
kept_recommended=$(kept_set)
"$OXIDIZR" verify >/dev/null || fail "verify fails under recommended"

step "use uutils --policy all: every applet with a counterpart"
"$OXIDIZR" use uutils --policy all | tee /tmp/use.out
! grep -q "==> keeping .* on GNU: \(policy list\|divergence\)" /tmp/use.out || fail "--policy all kept an applet by policy"
"$OXIDIZR" status --json >/tmp/status.json
jq -e '.policy == "all" and (.kept | length == 0)' /tmp/status.json >/dev/null || fail "--policy all: $(jq -c '{policy, kept}' /tmp/status.json)"
# Every applet compat names has a uutils counterpart: none may answer
# --version as GNU now.
n=0
for a in $(jq -r '.applets | keys[]' /tmp/compat.json); do
    ! is_gnu "$a" || fail "--policy all: $a is still GNU"
    n=$((n + 1))
done
[ "$n" -ge 100 ] || fail "compat named only $n applets"
for a in cp mv rm ls; do is_uutils "$a" || fail "--policy all: $a is not uutils"; done
"$OXIDIZR" compat --policy all --json >/tmp/compat-all.json || fail "compat --policy all exited non-zero"
jq -e '.policy == "all" and (.applets | to_entries | all(.value.decision == "switch"))' /tmp/compat-all.json >/dev/null \
    || fail "compat --policy all keeps something"
jq -e '.applets.timeout | .diverged > 0 and ([.divergences[].case] | index("reg-timeout-kill-status") != null)' /tmp/compat-all.json >/dev/null \
    || fail "compat --policy all does not report timeout's divergence (reg-timeout-kill-status)"

step "use uutils --policy strict keeps at least what recommended keeps"
"$OXIDIZR" use uutils --policy strict | tee /tmp/use.out
"$OXIDIZR" status --json | jq -e '.policy == "strict"' >/dev/null || fail "the state does not record --policy strict"
missing=$(LC_ALL=C comm -23 <(printf '%s\n' "$kept_recommended") <(kept_set))
[ -z "$missing" ] || fail "strict switched what recommended keeps: $missing"
for a in cp mv rm; do is_gnu "$a" || fail "strict: $a is not GNU"; done

step "back to recommended; unpin cp overrides the policy, pin cp puts it back"
"$OXIDIZR" use uutils --policy recommended >/dev/null
[ "$(kept_set)" = "$kept_recommended" ] || fail "recommended again keeps another set: $(kept_set | tr '\n' ' ')"
"$OXIDIZR" unpin cp | tee /tmp/unpin.out
is_uutils cp || fail "unpin cp: cp is not uutils"
"$OXIDIZR" status --json >/tmp/status.json
jq -e '.overrides | index("cp") != null' /tmp/status.json >/dev/null || fail "status --json does not list the cp override: $(jq -c .overrides /tmp/status.json)"
"$OXIDIZR" status | grep -q 'cp' || fail "status text does not mention cp"
is_gnu mv || fail "unpin cp moved mv"
"$OXIDIZR" pin cp | tee /tmp/pin.out
is_gnu cp || fail "pin cp: cp is not GNU"
grep -q '^==> keeping cp on GNU: admin pin' /tmp/pin.out || fail "pin printed no 'keeping cp on GNU: admin pin' line"
"$OXIDIZR" status --json >/tmp/status.json
jq -e '(.overrides | index("cp") == null) and (.kept | has("cp"))' /tmp/status.json >/dev/null \
    || fail "after pin cp: $(jq -c '{kept: .kept.cp, overrides}' /tmp/status.json)"
"$OXIDIZR" verify >/dev/null || fail "verify fails after pin cp"

step "config.toml policy = \"all\" is what use uutils does without --policy"
cfg=/etc/oxidizr-arch/config.toml
mkdir -p /etc/oxidizr-arch
if [ -f "$cfg" ] && grep -q '^policy *=' "$cfg"; then
    sed -i 's/^policy *=.*/policy = "all"/' "$cfg"
else
    printf 'policy = "all"\n' >>"$cfg"
fi
"$OXIDIZR" use uutils | tee /tmp/use.out
# Only the admin's pin of cp (above) is left: policy all keeps nothing itself.
"$OXIDIZR" status --json | jq -e '.policy == "all" and (.kept | keys == ["cp"]) and .kept.cp.kept_by == "admin"' >/dev/null \
    || fail "config policy = all was not honoured: $("$OXIDIZR" status --json | jq -c '{policy, kept}')"
for a in mv rm timeout; do is_uutils "$a" || fail "config policy = all: $a is not uutils"; done

step "--policy bogus is a usage error that changes nothing"
"$OXIDIZR" status --json >/tmp/status-before.json
snapshot >/tmp/before
st=0; out=$("$OXIDIZR" use uutils --policy bogus 2>&1) || st=$?
[ "$st" = 2 ] || fail "use uutils --policy bogus exited $st, expected 2 (E_USAGE): $out"
# A usage error is exit 2 (E_USAGE's code; argument errors are reported by
# the parser, as for an unknown subcommand: tests/cli_errors.rs).
grep -q 'bogus' <<<"$out" || fail "the usage error does not name the bad value: $out"
expect_exit 2 "$OXIDIZR" compat --policy bogus
snapshot >/tmp/after
diff /tmp/before /tmp/after || fail "--policy bogus changed the root"
"$OXIDIZR" status --json | diff /tmp/status-before.json - || fail "--policy bogus changed the state"

step "a uutils ls that fails its probe is the smoke's, not a keep (hook-b covers the rest)"
sed -i 's/^policy *=.*/policy = "recommended"/' "$cfg"
"$OXIDIZR" use uutils >/dev/null
pacman_U "$(mkpkg uutils-coreutils 0.12.0-2 ls-exit1)" >/tmp/pacman.out 2>&1 || true
grep -q 'error\[E_SMOKE\]' /tmp/pacman.out || { cat /tmp/pacman.out; fail "ls-exit1: the hook did not fail the smoke"; }
! grep -q 'keeping ls on GNU' /tmp/pacman.out || fail "ls-exit1 was kept by policy instead of failing the smoke"
echo "compat-policy: ok"
