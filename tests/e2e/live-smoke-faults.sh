#!/usr/bin/env bash
# Issue 13 item 10: a failed LIVE smoke (after the flip) in every operation
# runs the rollback chain, and afterwards every applet resolves. The fault
# is injected at the live smoke itself (OXIDIZR_FAULT_AT=live-smoke, the
# crash-injection build: the first live smoke of the process reports a
# failed check), so the real failure path runs; every earlier fault test
# broke the candidate smoke, before the flip.
. /src/tests/e2e/common.bash
facts=/var/log/oxidizr-arch/facts.jsonl
lib=/usr/lib/oxidizr-arch
install_all
install_oxidizr
active() { readlink $lib/active | sed 's|.*/||'; }

# new_facts: the facts written since the mark.
mark() { wc -l <$facts >/tmp/mark; }
new_facts() { tail -n +$(( $(cat /tmp/mark) + 1 )) $facts; }

# after_fault LABEL WANT_ACTIVE: the injected failure happened, the rollback
# chain ran (a rollback fact), every applet resolves, the state says
# degraded (unless a third argument says a later step of the same command
# committed), `active` is WANT_ACTIVE (when given); then repair for the next case.
after_fault() {
    local label=$1 want=${2:-} committed=${3:-}
    new_facts >/tmp/new
    grep -q 'injected by OXIDIZR_FAULT_AT' /tmp/new || fail "$label: premise: the live-smoke fault was not injected"
    jq -e 'select(.stage == "rollback" or (.stage == "recover" and (.decision | test("rolled"))))' /tmp/new >/dev/null \
        || { jq -c . /tmp/new | tail -5; fail "$label: no rollback after the failed live smoke"; }
    every_applet_resolves
    [ -z "$want" ] || [ "$(active)" = "$want" ] || fail "$label: active is $(active), expected $want"
    if [ -z "$committed" ]; then
        "$OXIDIZR" status >/tmp/status.out || true
        grep -q DEGRADED /tmp/status.out || fail "$label: the failed live smoke did not mark the state degraded"
    fi
    step "$label: rolled back ($(jq -r 'select(.stage == "rollback") | .decision' /tmp/new | tail -1)), every applet resolves"
    "$OXIDIZR" verify --repair >/dev/null || fail "$label: verify --repair failed after the fault"
}

step "use uutils, live smoke fails: back on the GNU generation"
"$OXIDIZR" use gnu >/dev/null
g=$(active); mark
OXIDIZR_FAULT_AT=live-smoke expect_exit 80 "$OXIDIZR" use uutils
/usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU after the failed use"
after_fault "use uutils" "$g"

step "pin, live smoke fails: back on the uutils generation"
"$OXIDIZR" use uutils >/dev/null
g=$(active); mark
OXIDIZR_FAULT_AT=live-smoke expect_exit 80 "$OXIDIZR" pin ls
after_fault "pin ls" "$g"

step "rollback, live smoke of the older generation fails: back where it was"
"$OXIDIZR" use gnu >/dev/null
"$OXIDIZR" use uutils >/dev/null
g=$(active); mark
OXIDIZR_FAULT_AT=live-smoke expect_exit 80 "$OXIDIZR" rollback
after_fault "rollback" "$g"

step "post-transaction hook (uutils upgrade), live smoke fails"
mark
OXIDIZR_FAULT_AT=live-smoke OXIDIZR_CRASH_ONLY=post-transaction \
    pacman_U "$(mkpkg uutils-coreutils 0.12.0-2)" >/tmp/pacman.out 2>&1 || true
grep -q 'error' /tmp/pacman.out || { cat /tmp/pacman.out; fail "the post hook did not report the failure"; }
after_fault "post-transaction"

step "pre-transaction transition (uutils-findutils removed), live smoke fails: pacman aborts"
"$OXIDIZR" use uutils >/dev/null
g=$(active); mark
OXIDIZR_FAULT_AT=live-smoke OXIDIZR_CRASH_ONLY=pre-transaction \
    pacman -R --noconfirm uutils-findutils >/tmp/pacman.out 2>&1 && { cat /tmp/pacman.out; fail "pacman -R went on after a failed pre hook"; }
pacman -Q uutils-findutils >/dev/null || fail "uutils-findutils was removed although its pre hook failed"
after_fault "pre-transaction" "$g"

step "recovery: use killed after the flip; the recovering command's live smoke fails"
"$OXIDIZR" use gnu >/dev/null
g=$(active)
OXIDIZR_CRASH_AT=engine:after-flip "$OXIDIZR" use uutils >/dev/null 2>&1 && fail "use was not killed"
mark
OXIDIZR_FAULT_AT=live-smoke "$OXIDIZR" status >/dev/null 2>&1 || true # read-only: recovers nothing
OXIDIZR_FAULT_AT=live-smoke "$OXIDIZR" use gnu >/tmp/use.out 2>&1 || { cat /tmp/use.out; fail "use gnu after the recovery failed"; }
grep -q "rolled the interrupted 'use' back" /tmp/use.out || { cat /tmp/use.out; fail "use gnu does not say it rolled the interrupted use back"; }
# use gnu then ran and committed generation $g's profile: not degraded.
after_fault "recovery" "$g" committed

step "verify --repair rebuilding after damage, live smoke fails"
"$OXIDIZR" use uutils >/dev/null
rm /usr/bin/cat
mark
OXIDIZR_FAULT_AT=live-smoke "$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 && fail "repair succeeded although its live smoke failed"
after_fault "verify --repair"
echo "live-smoke-faults: ok"
