#!/usr/bin/env bash
# Golden facts: the canonical, redacted facts of the main scenarios (use
# uutils, a coreutils upgrade through the post hook, use gnu, pin, rollback,
# disable) on packages with fixed contents, compared byte for byte with
# tests/golden/facts-main.jsonl. Regenerate only with OXIDIZR_UPDATE_GOLDEN=1
# through `test-orch/run shell` (the repository is read-only in test runs).
. /src/tests/e2e/common.bash
export MKPKG_ONLY="[ cat ls sort stty"
pacman_U "$(mkpkg coreutils 9.10-1)" "$(mkpkg uutils-coreutils 0.12.0-1)" >/dev/null
MKPKG_ONLY="find xargs" pacman_U "$(MKPKG_ONLY="find xargs" mkpkg findutils 4.11.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null
install_oxidizr

"$OXIDIZR" use uutils >/dev/null
pacman_U "$(mkpkg coreutils 9.11-1)" >/dev/null 2>&1
"$OXIDIZR" use gnu >/dev/null
"$OXIDIZR" pin ls >/dev/null
"$OXIDIZR" rollback >/dev/null
"$OXIDIZR" disable >/dev/null

# Canonical form: only the fields that do not depend on time or pids, and
# temp paths in decisions redacted. The degraded flag is pinned; whether an
# fsync was slow depends on the machine's load, so the fsync severity is
# pinned as its rule: severity is "warn" exactly when the slowest fsync so
# far (fsync_ms) is over 50 ms, and slow_fsync says the same.
canonical() {
    jq -c '{schema, operation, stage, decision, error_id, from_generation, to_generation, from_profile, to_profile, degraded,
            before_kind, after_kind, reason, rescue_profile, fs_types, backup_durable, relabel,
            fsync_severity_rule: (((.severity == "warn") == (.fsync_ms > 50)) and (.slow_fsync == (.severity == "warn")))}
           | with_entries(select(.value != null))' "$1" \
        | sed -E 's|/tmp/[A-Za-z0-9._-]+|/tmp/REDACTED|g'
}
canonical /var/log/oxidizr-arch/facts.jsonl >/tmp/facts.canonical
golden=/src/tests/golden/facts-main.jsonl
# gate FACTS: the golden gate itself; fails on any difference.
gate() { diff -u "$golden" "$1"; }
if [ "${OXIDIZR_UPDATE_GOLDEN:-}" = 1 ]; then
    cp /tmp/facts.canonical "$golden" || fail "cannot write $golden (use test-orch/run shell: the repository is read-only in test runs)"
    echo "updated $golden ($(wc -l <"$golden") facts)"
    exit 0
fi
[ -f "$golden" ] || fail "$golden is missing; regenerate with OXIDIZR_UPDATE_GOLDEN=1"
gate /tmp/facts.canonical || fail "facts differ from $golden"
echo "$(wc -l </tmp/facts.canonical) facts equal to the golden file"
# The gate fails on a diff: a wrong degraded flag on one fact (the K8 bug's
# kind), a changed decision, a dropped fact.
[ "$(grep -c '"degraded":false' /tmp/facts.canonical)" -gt 0 ] || fail "premise: no fact with degraded false"
jq -c 'if .stage == "harvest" then .degraded = true else . end' /tmp/facts.canonical >/tmp/facts.mutated
! gate /tmp/facts.mutated >/dev/null || fail "the golden gate passed a wrong degraded flag"
sed '0,/"stage":"flip"/s/"decision":"[^"]*"/"decision":"changed"/' /tmp/facts.canonical >/tmp/facts.mutated
cmp -s /tmp/facts.mutated /tmp/facts.canonical && fail "premise: no flip fact to change"
! gate /tmp/facts.mutated >/dev/null || fail "the golden gate passed a changed decision"
sed '$d' /tmp/facts.canonical >/tmp/facts.mutated
! gate /tmp/facts.mutated >/dev/null || fail "the golden gate passed a dropped fact"
# A fact whose severity breaks the rule (a 51 ms fsync without "warn").
jq -c '(select(.stage == "flip") | .fsync_ms) = 51 | del(.severity)' /var/log/oxidizr-arch/facts.jsonl >/tmp/facts.raw
canonical /tmp/facts.raw >/tmp/facts.mutated
! gate /tmp/facts.mutated >/dev/null || fail "the golden gate passed a slow fsync without severity warn"
echo "the golden gate fails on a wrong degraded flag, a changed decision, a dropped fact and a wrong fsync severity"
# Every fact line is complete JSON with the schema's fields.
jq -e 'select(.schema != 1 or (.op_id | length) == 0 or .phase_us == null)' /var/log/oxidizr-arch/facts.jsonl && fail "malformed fact"
true
