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
# temp paths in decisions redacted.
jq -c '{schema, operation, stage, decision, error_id, from_generation, to_generation}' \
    /var/log/oxidizr-arch/facts.jsonl | sed -E 's|/tmp/[A-Za-z0-9._-]+|/tmp/REDACTED|g' >/tmp/facts.canonical
golden=/src/tests/golden/facts-main.jsonl
if [ "${OXIDIZR_UPDATE_GOLDEN:-}" = 1 ]; then
    cp /tmp/facts.canonical "$golden" || fail "cannot write $golden (use test-orch/run shell: the repository is read-only in test runs)"
    echo "updated $golden ($(wc -l <"$golden") facts)"
    exit 0
fi
[ -f "$golden" ] || fail "$golden is missing; regenerate with OXIDIZR_UPDATE_GOLDEN=1"
diff -u "$golden" /tmp/facts.canonical || fail "facts differ from $golden"
echo "$(wc -l </tmp/facts.canonical) facts equal to the golden file"
# Every fact line is complete JSON with the schema's fields.
jq -e 'select(.schema != 1 or (.op_id | length) == 0 or .phase_us == null)' /var/log/oxidizr-arch/facts.jsonl && fail "malformed fact"
true
