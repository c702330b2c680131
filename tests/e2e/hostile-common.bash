# Sourced by the hostile-input scenarios (tests/e2e/hostile-*.sh), after
# common.bash. Every case runs in a throwaway nested overlay of this
# scenario root (so each starts from the same state and cannot leak into
# the next), and asserts:
#   - the exit code and error id (`oxidizr-hook --json` prints
#     {"error":{"id":...}} on stdout on failure; stderr has error[ID]);
#   - every managed /usr/bin applet still resolves to an executable
#     (except the ones the case itself destroyed);
#   - no GNU binary was lost: each pristine GNU file's bytes are at
#     /usr/bin/<applet> or in the store;
#   - where the command refuses: nothing in /usr/bin, /usr/lib/oxidizr-arch
#     or the sidecars changed.
. /src/tests/e2e/common.bash

HOSTILE_CASES=0
N=/tmp/hostile-nest
M=$N/m

# Exit codes of the error ids (docs/ARCHITECTURE.md "Errors").
declare -A EXIT_OF=([E_USAGE]=2 [E_POLICY]=10 [E_CONFIG]=11 [E_OWNERSHIP]=20 [E_ALPM]=21 [E_LOCKING]=30
    [E_ATOMIC_SWAP]=40 [E_EXDEV]=50 [E_BACKUP_MISSING]=60 [E_RESTORE_FAILED]=70 [E_IO]=74 [E_SMOKE]=80
    [E_STATE_CORRUPT]=90)

# hostile_setup: the four packages, oxidizr-hook where nested roots see it,
# the managed applets and their pristine GNU sha256 (before anything).
hostile_setup() {
    install_all
    install -m 0755 "$OXIDIZR" /usr/local/bin/oxidizr-hook
    managed_applets >/etc/hostile.applets
    hostile_record_pristine
    cat >/usr/local/bin/hostile-check <<'CHECK'
#!/bin/bash
# hostile-check [EXCEPT...]: every applet resolves, every pristine GNU
# binary is somewhere; the EXCEPT applets (destroyed by the case) are skipped.
declare -A skip=() sum_of=()
for a in "$@"; do skip[$a]=1; done
rc=0
files=()
while IFS= read -r a; do
    [ -n "${skip[$a]:-}" ] && continue
    [ -x "/usr/bin/$a" ] || { echo "unresolvable: /usr/bin/$a"; rc=1; }
    [ -f "/usr/bin/$a" ] && [ ! -L "/usr/bin/$a" ] && files+=("/usr/bin/$a")
done </etc/hostile.applets
for f in /usr/lib/oxidizr-arch/store/gnu/*/*; do
    [ -f "$f" ] && [ ! -L "$f" ] && files+=("$f")
done
# One sha256sum for every candidate ("SUM  PATH" per line).
while IFS= read -r line; do
    sum_of[${line:66}]=${line:0:64}
done < <([ ${#files[@]} = 0 ] || sha256sum -- "${files[@]}")
while read -r sum a; do
    [ -n "${skip[$a]:-}" ] && continue
    found=
    [ "${sum_of[/usr/bin/$a]:-}" = "$sum" ] && found=1
    for f in /usr/lib/oxidizr-arch/store/gnu/*/"$a"; do
        [ "${sum_of[$f]:-}" = "$sum" ] && found=1
    done
    [ -n "$found" ] || { echo "lost: GNU $a"; rc=1; }
done </etc/hostile.pristine
exit $rc
CHECK
    chmod 0755 /usr/local/bin/hostile-check
}

# hostile_record_pristine: the pristine table from the current /usr/bin files.
hostile_record_pristine() {
    while IFS= read -r a; do
        printf '%s %s\n' "$(sha256sum <"/usr/bin/$a" | cut -d' ' -f1)" "$a"
    done </etc/hostile.applets >/etc/hostile.pristine
}

# nest_begin: the nested root; its upper layer is on /tmp (tmpfs), or with
# NEST_FS=ext4 on a fresh loop-mounted ext4 (chattr +i/+a need it).
nest_begin() {
    mkdir -p $N
    if [ "${NEST_FS:-}" = ext4 ]; then
        truncate -s 256M /var/tmp/hostile-nest.img
        mkfs.ext4 -q -F /var/tmp/hostile-nest.img
        mount -o loop /var/tmp/hostile-nest.img $N
    fi
    mkdir -p $N/u $N/w $M
    mount -t overlay overlay -o "lowerdir=/,upperdir=$N/u,workdir=$N/w" $M
    mount -t proc proc $M/proc
    mount --rbind /dev $M/dev
    mount --make-rslave $M/dev
    mount -t tmpfs tmpfs $M/tmp
}

nest_end() {
    if mountpoint -q $M; then umount -R $M 2>/dev/null || umount -lR $M; fi
    # Immutable or append-only files a case left in the upper layer.
    chattr -R -f -i -a $N/u 2>/dev/null || true
    if mountpoint -q $N; then umount $N 2>/dev/null || umount -l $N; fi
    rm -rf $N /var/tmp/hostile-nest.img
}

# in_nest CMD...: CMD chrooted in the nested root (stdin passed on).
in_nest() { chroot $M /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin LC_ALL=C "$@"; }

# tree ROOT: what "nothing changed" compares: every entry of /usr/bin, of
# our lib tree and of the sidecars (type, link target, size and mode).
tree() {
    local r=$1 d
    for d in usr/bin usr/lib/oxidizr-arch var/lib/oxidizr-arch/sidecars; do
        if [ ! -e "$r/$d" ]; then echo "$d absent"; continue; fi
        find "$r/$d" -mindepth 1 \( -type f -printf "$d/%P f %s %m\n" \) -o \( -type l -printf "$d/%P l %l\n" \) \
            -o \( -type d -printf "$d/%P d %m\n" \) -o -printf "$d/%P %y\n"
    done | LC_ALL=C sort
}

# case_begin NAME: a fresh nested root for one case.
case_begin() {
    HOSTILE_CASES=$((HOSTILE_CASES + 1))
    CASE=$1
    step "case $HOSTILE_CASES: $CASE"
    nest_begin
}

case_end() { nest_end; }

# snap: records the tree before the hostile command (after the planting).
snap() { tree $M >/tmp/tree.before; }

# unchanged: fails unless the tree is what snap recorded.
unchanged() {
    tree $M >/tmp/tree.after
    diff -u /tmp/tree.before /tmp/tree.after >/tmp/tree.diff || {
        head -20 /tmp/tree.diff
        fail "$CASE: something changed"
    }
}

# expect_error ID ARGS...: `oxidizr-hook --json ARGS...` in the nest must
# exit with ID's code, print {"error":{"id":ID}} on stdout and error[ID]
# on stderr. stdin is passed on. The reason is kept in $REASON.
expect_error() {
    local id=$1 got=0; shift
    in_nest oxidizr-hook --json "$@" >/tmp/case.out 2>/tmp/case.err || got=$?
    [ "$got" = "${EXIT_OF[$id]}" ] || {
        cat /tmp/case.out /tmp/case.err
        fail "$CASE: 'oxidizr-hook $*' exited $got, expected ${EXIT_OF[$id]} ($id)"
    }
    [ "$(jq -r .error.id </tmp/case.out)" = "$id" ] || { cat /tmp/case.out; fail "$CASE: no JSON error $id"; }
    grep -q "error\[$id\]" /tmp/case.err || { cat /tmp/case.err; fail "$CASE: no error[$id] on stderr"; }
    REASON=$(jq -r .error.reason </tmp/case.out)
    echo "    -> $id: $REASON"
}

# expect_ok ARGS...: `oxidizr-hook ARGS...` in the nest must succeed.
expect_ok() {
    in_nest oxidizr-hook "$@" >/tmp/case.out 2>/tmp/case.err || {
        cat /tmp/case.out /tmp/case.err
        fail "$CASE: 'oxidizr-hook $*' failed"
    }
}

# expect_error_code CODE ARGS...: `oxidizr-hook ARGS...` in the nest must
# exit CODE (e.g. 1: verify found problems); its stdout is in /tmp/case.out.
expect_error_code() {
    local want=$1 got=0; shift
    in_nest oxidizr-hook "$@" >/tmp/case.out 2>/tmp/case.err || got=$?
    [ "$got" = "$want" ] || { cat /tmp/case.out /tmp/case.err; fail "$CASE: 'oxidizr-hook $*' exited $got, expected $want"; }
}

# reason_has TEXT: the last error's reason mentions TEXT.
reason_has() { case $REASON in *"$1"*) ;; *) fail "$CASE: the reason does not mention '$1': $REASON" ;; esac; }

# intact [EXCEPT...]: every applet resolves and no GNU binary was lost.
intact() {
    in_nest hostile-check "$@" >/tmp/check.out 2>&1 || {
        head -5 /tmp/check.out
        fail "$CASE: $(head -1 /tmp/check.out)"
    }
}

# degraded_with ID: status shows the degraded state with ID.
degraded_with() {
    # status exits 1 (STATUS_DRIFT) when the disk does not realize the
    # profile, as after a failed first switch; its document is still there.
    local st=0
    in_nest oxidizr-hook status --json >/tmp/status.json 2>/dev/null || st=$?
    [ "$st" = 0 ] || [ "$st" = 1 ] || fail "$CASE: status failed (exit $st)"
    [ "$(jq -r '.degraded.error_id' /tmp/status.json)" = "$1" ] || {
        jq .degraded /tmp/status.json
        fail "$CASE: status does not show degraded $1"
    }
}

# hostile_done NAME: the closing count line; every case counts in
# `test-orch/run test` (/artifacts/e2e-NAME.counts: "PASSED FAILED").
hostile_done() {
    echo "$1: $HOSTILE_CASES hostile cases passed"
    echo "$HOSTILE_CASES 0" >"/artifacts/e2e-$1.counts" 2>/dev/null || true
}
