#!/usr/bin/env bash
# The facts the design record asks for (docs/TRACEABILITY.md), each read
# back from facts.jsonl after real operations on a pacman-managed root:
# rescue_profile (gnu-subset, busybox, none on the refusal path), the
# filesystem types, backup_durable, the relabel outcome ("not enabled" here:
# the testbed has no SELinux), security.capability validated after the flip
# (present, then lost: a fact with its error and verify's capability-lost),
# per-name restore facts with before_kind/after_kind, and
# reason=idempotent_noop when a second restore finds the work done.
. /src/tests/e2e/common.bash
install_all
facts=/var/log/oxidizr-arch/facts.jsonl
store=/usr/lib/oxidizr-arch/store/gnu/coreutils-9.10-1
# last_op: the facts of the newest operation.
last_op() { jq -c --arg op "$(tail -1 $facts | jq -r .op_id)" 'select(.op_id == $op)' $facts; }

step "premises: no SELinux in the testbed; setcap and getcap exist"
[ ! -e /sys/fs/selinux/enforce ] || fail "precondition: SELinux is enabled here"
command -v setcap >/dev/null && command -v getcap >/dev/null || fail "precondition: no setcap/getcap"

step "a file capability on pacman's stty, then use uutils"
setcap cap_net_raw+ep /usr/bin/stty
getcap /usr/bin/stty | grep -q cap_net_raw || fail "precondition: setcap did not take"
"$OXIDIZR" use uutils >/dev/null
last_op >/tmp/op.jsonl
pre=$(jq -c 'select(.stage == "preflight")' /tmp/op.jsonl)
echo "$pre"
jq -e '.rescue_profile == "gnu-subset"' <<<"$pre" >/dev/null || fail "preflight: no rescue_profile gnu-subset"
jq -e --arg t "$(stat -f -c %T /usr/bin)" '.fs_types["/usr/bin"] == "overlayfs" and $t == "overlayfs"' <<<"$pre" >/dev/null \
    || fail "preflight: /usr/bin is not said to be on overlayfs (stat says $(stat -f -c %T /usr/bin))"
jq -e '.fs_types | length == 2 and (has("/usr/lib") or has("/usr/lib/oxidizr-arch"))' <<<"$pre" >/dev/null || fail "preflight: no type for our tree's nearest directory"
for stage in harvest link; do
    jq -e --arg s $stage 'select(.stage == $s) | .backup_durable == true' /tmp/op.jsonl >/dev/null || fail "no backup_durable on the $stage fact"
done
jq -e 'select(.stage == "commit") | .relabel == "selinux not enabled: nothing to relabel"' /tmp/op.jsonl >/dev/null \
    || fail "the commit fact does not carry the relabel outcome"
jq -e 'select(.stage == "flip") | has("relabel") | not' /tmp/op.jsonl >/dev/null || fail "relabel said before the flip's links"
jq -e 'select(.stage == "flip") | .to_profile == "uutils" and (has("from_profile") | not)' /tmp/op.jsonl >/dev/null \
    || fail "the first flip does not say to_profile uutils (and no from_profile)"
jq -e 'select(.stage == "capabilities") | .decision == "1 file capabilities recorded at harvest are present after the flip" and .error_id == null' \
    /tmp/op.jsonl >/dev/null || fail "no post-flip capability validation fact"
jq -e 'select(.fsync_ms == null)' /tmp/op.jsonl >/dev/null && fail "a fact without fsync_ms"
jq -e 'select((.severity == "warn") != (.fsync_ms > 50))' /tmp/op.jsonl >/dev/null && fail "severity disagrees with fsync_ms"
getcap "$store/stty" | grep -q cap_net_raw || fail "the stored stty lost its capability"
expect_exit 0 "$OXIDIZR" verify

step "the capability removed from the stored stty: verify says capability-lost; the next flip says so as an error"
setcap -r "$store/stty"
expect_exit 1 "$OXIDIZR" verify
{ "$OXIDIZR" verify 2>&1 || true; } | grep -q "problem \[capability-lost\]: $store/stty (/usr/bin/stty) had security.capability when harvested and has none now: reinstall coreutils" \
    || fail "verify does not report the lost capability"
"$OXIDIZR" use gnu >/dev/null
last_op >/tmp/op.jsonl
jq -e 'select(.stage == "capabilities") | .error_id == "E_BACKUP_MISSING" and (.decision | contains("/usr/bin/stty"))' /tmp/op.jsonl >/dev/null \
    || fail "the flip's capability check did not report the loss"
jq -e 'select(.stage == "flip") | .from_profile == "uutils" and .to_profile == "gnu"' /tmp/op.jsonl >/dev/null \
    || fail "the flip fact does not say uutils -> gnu"
setcap cap_net_raw+ep "$store/stty"
expect_exit 0 "$OXIDIZR" verify
"$OXIDIZR" use uutils >/dev/null

step "disable: one restore fact per name, symlink -> file, reason restored"
"$OXIDIZR" disable >/dev/null
last_op >/tmp/op.jsonl
n=$(managed_applets | wc -l)
[ "$(jq -c 'select(.stage == "restore")' /tmp/op.jsonl | wc -l)" = "$n" ] || fail "not $n restore facts"
jq -e 'select(.stage == "restore") | select(.before_kind != "symlink" or .after_kind != "file" or .reason != "restored")' /tmp/op.jsonl \
    && fail "a restore fact is not symlink -> file (restored)"
jq -e 'select(.stage == "restore" and .decision == "/usr/bin/ls: symlink -> file (restored)")' /tmp/op.jsonl >/dev/null \
    || fail "no restore fact for ls"

step "a second restore of a name already restored is a no-op: reason idempotent_noop"
"$OXIDIZR" use uutils >/dev/null
got=0
(OXIDIZR_CRASH_AT=restore:after-rename "$OXIDIZR" disable >/tmp/crash.out 2>&1) 2>/dev/null || got=$?
[ "$got" = 137 ] || { cat /tmp/crash.out; fail "disable was not killed after its first restore (exit $got)"; }
"$OXIDIZR" disable >/tmp/disable.out 2>&1 || { cat /tmp/disable.out; fail "disable after the kill failed"; }
grep '"stage":"restore"' $facts | tail -"$n" >/tmp/restores.jsonl
[ "$(jq -c 'select(.reason == "idempotent_noop")' /tmp/restores.jsonl | wc -l)" = 1 ] || {
    cat /tmp/restores.jsonl; fail "not exactly one idempotent_noop restore"; }
jq -e 'select(.reason == "idempotent_noop") | .before_kind == "file" and .after_kind == "file"' /tmp/restores.jsonl >/dev/null \
    || fail "the no-op restore does not say file -> file"
[ "$(jq -c 'select(.reason == "restored")' /tmp/restores.jsonl | wc -l)" = $((n - 1)) ] || fail "the other names were not restored"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "rescue_profile none: a root whose GNU tools cannot run and no busybox; the refusal is a fact"
r=/tmp/bare-root
mkdir -p $r/var/lib/pacman
pacman --root $r --dbpath $r/var/lib/pacman -U --noconfirm "$(mkpkg coreutils 9.10-1)" >/dev/null 2>&1 \
    || fail "precondition: pacman cannot install coreutils into $r"
expect_exit 10 "$OXIDIZR" --root $r use uutils
jq -e 'select(.stage == "preflight") | .rescue_profile == "none" and .error_id == "E_POLICY"' $r/var/log/oxidizr-arch/facts.jsonl >/dev/null \
    || fail "no preflight fact with rescue_profile none and E_POLICY"
[ ! -e $r/usr/lib/oxidizr-arch ] || fail "a refused use created /usr/lib/oxidizr-arch"

step "rescue_profile busybox: the same root with the (static) busybox package"
pacman --root $r --dbpath $r/var/lib/pacman -U --noconfirm "$(mkpkg busybox 1.38.0-1)" >/dev/null 2>&1 \
    || fail "precondition: pacman cannot install busybox into $r"
mkdir -p $r/dev && mount --bind /dev $r/dev
got=0
"$OXIDIZR" --root $r use uutils >/tmp/bb.out 2>&1 || got=$?
umount -l $r/dev
cat /tmp/bb.out
jq -e 'select(.stage == "preflight" and .error_id == null) | .rescue_profile == "busybox"' $r/var/log/oxidizr-arch/facts.jsonl >/dev/null \
    || fail "no preflight fact with rescue_profile busybox (exit $got)"
step "facts-fields: all checks passed"
