#!/usr/bin/env bash
# Issue 14, acceptance: broken uutils packages that reproduce field
# regressions (test-orch/mkpkg --variants: each a wrapper that breaks ONE
# behaviour of ONE applet, --version intact) are each caught by the real
# post-transaction hook: uutils active (recommended policy), `pacman -U` the
# variant -> the hook succeeds, says `keeping APPLET on GNU: divergence ...`
# (pacman's output and pacman.log), APPLET is GNU, every other applet stays
# as it was (the kept set grows by APPLET only, every applet outside it is
# uutils), `status --json` and the
# facts name the divergence and its case, `compat --json` reproduces it with
# the reg- case of data/compat/cases/regressions.toml; the next package (the
# next variant, or a good one) brings APPLET back to uutils.
# An applet the real uutils is kept for already (the concern list: cp, rm;
# or a real divergence the corpus finds) cannot show the switch back and
# forth: for its variant, compat must still report the variant's case; at
# least 10 variants must be proven whole.
# One root for all variants in sequence; each variant is one counted case
# (/artifacts/e2e-compat-variants.counts).
# The product defaults (policy recommended, differential checks on), not
# the policy-all configuration of the older scenarios (common.bash).
OXIDIZR_E2E_DEFAULT_CONFIG=1
. /src/tests/e2e/common.bash
facts=/var/log/oxidizr-arch/facts.jsonl

# VARIANT  CASE (the reg- case that must catch it). The applet and the kind
# come from `mkpkg --variants`; every variant it lists must be here.
declare -A case_of=(
    [date-r-ignored]=reg-date-r-file
    [date-unknown-flag]=reg-date-unknown-long-option
    [tail-n-plus]=reg-tail-n-plus
    [install-m-ignored]=reg-install-m-mode
    [sort-n-lexical]=reg-sort-n
    [ln-sf-no-replace]=reg-ln-sf-replace
    [wc-l-off-by-one]=reg-wc-l-stdin
    [cut-d-ignored]=reg-cut-d-f
    [seq-w-no-pad]=reg-seq-w
    [head-c-lines]=reg-head-c
    [touch-r-ignored]=reg-touch-r
    [mkdir-p-exists]=reg-mkdir-p-existing
    [rm-f-missing]=reg-rm-f-missing
    [cp-p-no-preserve]=reg-cp-p-mode-mtime
    [basename-s-ignored]=reg-basename-s
    [cat-n-ignored]=reg-cat-n
    [chmod-R-not-recursive]=reg-chmod-r
    [uniq-c-no-count]=reg-uniq-c
    [tee-a-truncates]=reg-tee-a
    [sha256sum-c-always-ok]=reg-sha256sum-c-mismatch
    [find-maxdepth-ignored]=reg-find-maxdepth
    [xargs-n-ignored]=reg-xargs-n
)
# The shipped concern list (data/compat/concerns.toml): kept by policy.
concern=" cp mv rm "

mapfile -t listed < <(/src/test-orch/mkpkg --variants)
[ "${#listed[@]}" -ge 10 ] || fail "mkpkg lists ${#listed[@]} behaviour variants, expected at least 10"
for line in "${listed[@]}"; do
    read -r v _ <<<"$line"
    [ -n "${case_of[$v]:-}" ] || fail "mkpkg variant $v has no case in this scenario's table"
    grep -qx "id = \"${case_of[$v]}\"" /src/data/compat/cases/regressions.toml || fail "no case ${case_of[$v]} in regressions.toml"
done

# version APPLET: the first line of /usr/bin/APPLET --version.
version() { local v; v=$(/usr/bin/"$1" --version 2>/dev/null) || true; printf '%s\n' "${v%%$'\n'*}"; }
is_gnu() { case $(version "$1") in *GNU*) return 0 ;; *) return 1 ;; esac; }
# uutils: coreutils say "(uutils coreutils)", findutils "find (Rust) 0.10.0"
# and "xargs 0.10.0": anything that starts and is not GNU.
is_uutils() { local v; v=$(version "$1"); [ -n "$v" ] && case $v in *GNU*) false ;; *) true ;; esac; }
kept_set() { "$OXIDIZR" status --json | jq -r '.kept | keys[]' | LC_ALL=C sort | tr '\n' ' '; }
# others_switched: no applet with a counterpart outside the kept set
# answers --version as GNU (the others switched).
others_switched() {
    local kept a
    kept=" $(kept_set) "
    for a in "${counterparts[@]}"; do
        case $kept in *" $a "*) continue ;; esac
        ! is_gnu "$a" || fail "$a is GNU but not kept (after $1)"
    done
}

install_all
install_oxidizr
step "use uutils (recommended): the baseline kept set"
"$OXIDIZR" use uutils | tee /tmp/use.out
baseline=$(kept_set)
echo "kept on GNU with the real uutils 0.12: $baseline"
for a in cp mv rm; do
    case " $baseline " in *" $a "*) ;; *) fail "$a is not kept on GNU by the recommended policy" ;; esac
done
"$OXIDIZR" compat --json >/tmp/compat0.json || fail "compat --json exited non-zero"
mapfile -t counterparts < <(jq -r '.applets | keys[]' /tmp/compat0.json)
[ "${#counterparts[@]}" -ge 100 ] || fail "compat names only ${#counterparts[@]} applets"
others_switched "use uutils"

# A variant can show the switch -> keep -> switch back only where the real
# uutils switches; where the baseline keeps the applet already (the concern
# list, or a real divergence the corpus finds), compat must still report
# the variant's own case. At least $min_proven variants must be proven whole.
min_proven=10
proven=0
for line in "${listed[@]}"; do
    read -r v _ a _ <<<"$line"
    case " $baseline " in
    *" $a "*) echo "note: $a is kept with the real uutils already ($("$OXIDIZR" status --json | jq -c --arg a "$a" '.kept[$a] | {kept_by, case}')): variant $v is checked by compat only" ;;
    *) is_uutils "$a" || fail "premise: $a is not uutils after use uutils: $(version "$a")" ;;
    esac
done

passed=0
rel=1
prev_kind= prev_applet=
# install_pkg KIND VARIANT: pacman -U the next build of KIND (a variant or,
# empty, a good one); fails unless pacman and the hook succeeded. Leaves
# the output in /tmp/pacman.out and this transaction's pacman.log lines in
# /tmp/pacman.log.new, its facts in /tmp/facts.new.
install_pkg() {
    local kind=$1 variant=$2 pkg log_off facts_off st=0
    rel=$((rel + 1))
    case $kind in uutils-coreutils) pkg=$(mkpkg "$kind" "0.12.0-$rel" "$variant") ;; *) pkg=$(mkpkg "$kind" "0.10.0-$rel" "$variant") ;; esac
    log_off=$(stat -c %s /var/log/pacman.log)
    facts_off=$(wc -l <"$facts")
    pacman_U "$pkg" >/tmp/pacman.out 2>&1 || st=$?
    cat /tmp/pacman.out
    [ "$st" = 0 ] || fail "pacman -U ${variant:-good $kind} exited $st"
    ! grep -q "failed to execute correctly" /tmp/pacman.out || fail "the hook failed on ${variant:-good $kind}"
    ! grep -q 'error\[' /tmp/pacman.out || fail "the hook reported an error on ${variant:-good $kind}"
    tail -c +$((log_off + 1)) /var/log/pacman.log >/tmp/pacman.log.new
    tail -n +$((facts_off + 1)) "$facts" >/tmp/facts.new
}

# back_on_uutils APPLET: after a package without its variant.
back_on_uutils() {
    is_uutils "$1" || fail "$1 did not go back to uutils: $(version "$1")"
    "$OXIDIZR" status --json | jq -e --arg a "$1" '.kept | has($a) | not' >/dev/null || fail "$1 is still listed as kept"
}

for line in "${listed[@]}"; do
    read -r v kind a _ <<<"$line"
    c=${case_of[$v]}
    step "variant $v: $a ($c)"
    # A findutils variant after the coreutils ones: a good coreutils first.
    if [ -n "$prev_kind" ] && [ "$prev_kind" != "$kind" ]; then
        install_pkg "$prev_kind" ""
        [ -z "$prev_applet" ] || back_on_uutils "$prev_applet"
        [ "$(kept_set)" = "$baseline" ] || fail "kept set after the good $prev_kind: $(kept_set), expected $baseline"
        prev_applet=
    fi
    install_pkg "$kind" "$v"
    # The previous variant's applet is back on uutils (unless this variant
    # breaks the same applet).
    [ -z "$prev_applet" ] || [ "$prev_applet" = "$a" ] || back_on_uutils "$prev_applet"
    is_gnu "$a" || fail "$a is not GNU after variant $v: $(version "$a")"
    # compat reproduces the divergence with the reg- case (read-only).
    "$OXIDIZR" compat --json "$a" >/tmp/compat.json || fail "compat --json $a exited non-zero"
    jq -e --arg a "$a" --arg c "$c" '.applets[$a] | .decision == "keep" and .diverged > 0 and .broken == false
        and ([.divergences[].case] | index($c) != null)' /tmp/compat.json >/dev/null || {
        jq -c --arg a "$a" '.applets[$a] | del(.divergences)' /tmp/compat.json
        fail "compat does not report $a kept with a divergence on $c"
    }
    case " $baseline " in
    *" $a "*)
        # Kept anyway (concern list or a real divergence): the line and the
        # state say why.
        grep -q "keeping $a on GNU: " /tmp/pacman.out || fail "no 'keeping $a on GNU' line in pacman's output"
        "$OXIDIZR" status --json | jq -e --arg a "$a" '.kept[$a].kept_by | IN("policy-list", "divergence")' >/dev/null \
            || fail "status: $a is not kept by the policy list or a divergence"
        [ "$(kept_set)" = "$baseline" ] || fail "kept set after $v: $(kept_set), expected $baseline"
        ;;
    *)
        grep -q "keeping $a on GNU: divergence" /tmp/pacman.out || fail "no 'keeping $a on GNU: divergence' line in pacman's output"
        grep -q "keeping $a on GNU: divergence" /tmp/pacman.log.new || fail "no 'keeping $a on GNU: divergence' line in pacman.log"
        "$OXIDIZR" status --json >/tmp/status.json
        jq -e --arg a "$a" --slurpfile cj /tmp/compat.json '.kept[$a] | .kept_by == "divergence" and .case != null
            and (.case as $k | [$cj[0].applets[$a].divergences[].case] | index($k) != null)' /tmp/status.json >/dev/null || {
            jq -c --arg a "$a" '.kept[$a]' /tmp/status.json
            fail "status --json: $a is not kept by a divergence with one of its diverging cases"
        }
        jq -e --arg a "$a" 'select(.stage == "keep" and .applet == $a and .kept_by == "divergence")' /tmp/facts.new >/dev/null \
            || fail "no keep fact for $a (kept_by divergence) from this transaction"
        [ "$(kept_set)" = "$(printf '%s\n' $baseline "$a" | LC_ALL=C sort -u | tr '\n' ' ')" ] \
            || fail "kept set after $v: $(kept_set), expected $baseline + $a"
        proven=$((proven + 1))
        ;;
    esac
    # The others switched.
    others_switched "variant $v"
    "$OXIDIZR" verify >/dev/null || fail "verify fails after variant $v"
    # What the next package must bring back (a concern-list applet stays GNU).
    prev_kind=$kind
    case " $baseline " in *" $a "*) prev_applet= ;; *) prev_applet=$a ;; esac
    passed=$((passed + 1))
done

step "good packages again: everything back to the baseline"
install_pkg "$prev_kind" ""
[ -z "$prev_applet" ] || back_on_uutils "$prev_applet"
[ "$(kept_set)" = "$baseline" ] || fail "kept set at the end: $(kept_set), expected $baseline"
[ "$proven" -ge "$min_proven" ] || fail "only $proven variants were proven switch -> keep -> switch back (at least $min_proven)"
echo "$passed 0" >/artifacts/e2e-compat-variants.counts
echo "compat-variants: ok ($passed variants caught, $proven of them proven switch -> keep -> back)"
