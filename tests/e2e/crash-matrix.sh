#!/usr/bin/env bash
# Crash injection at every named mutation point of use, pin, rollback,
# disable, the pre-transaction transitions (removal and upgrade of a uutils
# package), the post-transaction hook, oxidizr-arch's own removal and
# verify --repair (the oxidizr-hook under test is built with the
# crash-injection feature). Each kill runs in a throwaway overlay of
# this scenario root (nested overlayfs), so every case starts from the same
# state. After each kill:
#   (a) every managed applet resolves to an executable;
#   (b) `verify --repair` converges and `verify` then exits 0;
#   (c) no GNU binary was lost: each pristine GNU file's bytes are at
#       /usr/bin/<applet> or in the store;
#   (d) after `verify --repair` no `.oxidizr-tmp.*` entry is left in
#       /usr/bin or our trees.
# Every (operation, kill point) pair is one counted case. A point reached
# N times is killed at its first and its last occurrence.
. /src/tests/e2e/common.bash
counts=/artifacts/e2e-crash-matrix.counts
pass=0
failc=0
trap 'echo "$pass $failc" >"$counts"' EXIT

install_all
install_oxidizr
managed_applets >/etc/oxidizr-matrix.applets
# The pristine GNU bytes, before oxidizr-arch ever touched anything.
while IFS= read -r a; do sha256sum "/usr/bin/$a"; done </etc/oxidizr-matrix.applets |
    sed 's|  /usr/bin/| |' >/etc/oxidizr-matrix.pristine
"$OXIDIZR" use uutils >/dev/null
"$OXIDIZR" use gnu >/dev/null
cp "$(mkpkg coreutils 9.11-1)" /var/tmp/coreutils-9.11-1-x86_64.pkg.tar.zst
echo /var/tmp/coreutils-9.11-1-x86_64.pkg.tar.zst >/etc/oxidizr-matrix.coreutils-pkg
cp "$(mkpkg uutils-coreutils 0.12.0-2)" /var/tmp/uutils-coreutils-0.12.0-2-x86_64.pkg.tar.zst
echo /var/tmp/uutils-coreutils-0.12.0-2-x86_64.pkg.tar.zst >/etc/oxidizr-matrix.uutils-pkg

# The invariant checks, run inside a nested root.
cat >/usr/local/bin/oxidizr-matrix-check <<'CHECK'
#!/bin/bash
# (a) every applet resolves; (c) every pristine GNU file is somewhere.
rc=0
while IFS= read -r a; do
    [ -x "/usr/bin/$a" ] || { echo "unresolvable: /usr/bin/$a"; rc=1; }
done </etc/oxidizr-matrix.applets
while read -r sum a; do
    found=
    if [ -f "/usr/bin/$a" ] && [ ! -L "/usr/bin/$a" ]; then
        [ "$(sha256sum <"/usr/bin/$a" | cut -d' ' -f1)" = "$sum" ] && found=1
    fi
    if [ -z "$found" ]; then
        for f in /usr/lib/oxidizr-arch/store/gnu/*/"$a"; do
            [ -f "$f" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$sum" ] && { found=1; break; }
        done
    fi
    [ -n "$found" ] || { echo "lost: GNU $a"; rc=1; }
done </etc/oxidizr-matrix.pristine
exit $rc
CHECK
chmod 755 /usr/local/bin/oxidizr-matrix-check

nest=/tmp/nest.0
# nested_begin [SETUP_LAYER]: a fresh overlay of / (with the setup's upper
# dir as an extra lower layer when given), with /proc, /dev and /tmp.
nested_begin() {
    local lower=/
    [ -n "${1:-}" ] && lower="$1:/"
    mkdir -p $nest/u $nest/w $nest/m
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$nest/u,workdir=$nest/w" $nest/m
    mount -t proc proc $nest/m/proc
    mount --rbind /dev $nest/m/dev
    mount -t tmpfs tmpfs $nest/m/tmp
}
nested_end() {
    umount -R $nest/m 2>/dev/null || umount -lR $nest/m
    rm -rf $nest
}
in_nest() { chroot $nest/m /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin LC_ALL=C "$@"; }

# setup_layer SETUP: runs SETUP once in a nested root and keeps its upper
# dir as a layer every case of the operation starts from.
setup_layer() {
    rm -rf /tmp/layer
    nested_begin
    in_nest bash -c "$1" >/tmp/setup.out 2>&1 || { cat /tmp/setup.out; nested_end; fail "setup failed: $1"; }
    umount -R $nest/m
    mv $nest/u /tmp/layer
    rm -rf $nest
}

# The crash points an uninterrupted run of OP passes, as "SUBCOMMAND NAME#N"
# (first and last occurrence of each name, per subcommand: pacman runs the
# pre- and post-transaction hooks as two processes).
points_of() {
    local op=$1
    nested_begin /tmp/layer
    in_nest bash -c "OXIDIZR_CRASH_TRACE=/var/tmp/trace $op" >/dev/null 2>&1 || true
    cp $nest/m/var/tmp/trace /tmp/trace 2>/dev/null || : >/tmp/trace
    nested_end
    awk '{ n[$0]++; last[$0] = n[$0]; if (n[$0] == 1) order[++k] = $0 }
         END { for (i = 1; i <= k; i++) { p = order[i]; print p "#1"; if (last[p] > 1) print p "#" last[p] } }' /tmp/trace
}

# One case: kill OP at "SUB POINT", then check, repair, verify. Runs in
# its own nested root /tmp/nest.ID; appends "ok" or "FAILED: why" to
# /tmp/results. Cases run two at a time (this machine has two cores).
kill_case() {
    local label=$1 op=$2 sub=${3%% *} point=${3#* } id=$4 why=
    local nest=/tmp/nest.$id out=/tmp/case.$id
    mkdir -p $out
    nested_begin /tmp/layer
    in_nest bash -c "OXIDIZR_CRASH_TRACE=/var/tmp/trace OXIDIZR_CRASH_ONLY='$sub' OXIDIZR_CRASH_AT='$point' $op" >$out/case 2>&1 || true
    reached=$(tail -1 $nest/m/var/tmp/trace 2>/dev/null)
    [ "$reached" = "$sub ${point%#*}" ] || why="not killed at $sub $point (last point: ${reached:-none})"
    [ -n "$why" ] || in_nest oxidizr-matrix-check >$out/check 2>&1 || why="after the kill: $(head -3 $out/check | tr '\n' ' ')"
    [ -n "$why" ] || in_nest oxidizr-hook verify --repair >$out/repair 2>&1 || why="verify --repair failed: $(tail -2 $out/repair | tr '\n' ' ')"
    [ -n "$why" ] || in_nest oxidizr-hook verify >$out/verify 2>&1 || why="not healthy after repair: $(head -3 $out/verify | tr '\n' ' ')"
    [ -n "$why" ] || in_nest oxidizr-matrix-check >$out/check 2>&1 || why="after repair: $(head -3 $out/check | tr '\n' ' ')"
    if [ -z "$why" ]; then
        left=$(in_nest find /usr/bin /usr/lib/oxidizr-arch /var/lib/oxidizr-arch -name '.oxidizr-tmp.*' 2>/dev/null | head -3 | tr '\n' ' ')
        [ -z "$left" ] || why="temporaries left after repair: $left"
    fi
    nested_end
    rm -rf $out
    if [ -z "$why" ]; then
        echo ok >>/tmp/results
    else
        echo "FAILED: $label killed at $sub $point: $why" >>/tmp/results
    fi
}

pkg=$(cat /etc/oxidizr-matrix.coreutils-pkg)
upkg=$(cat /etc/oxidizr-matrix.uutils-pkg)
# verify --repair after damage that leaves every command resolvable (the
# matrix checks that after each kill): a foreign entry in the active
# generation, one of our directories with mode 0700. Any problem makes
# the repair rebuild the profile (a whole apply).
damage='oxidizr-hook use uutils && touch /usr/lib/oxidizr-arch/active/bin/evil && chmod 0700 /usr/lib/oxidizr-arch/store'
declare -a ops=(
    "use-uutils|true|oxidizr-hook use uutils"
    "use-gnu|oxidizr-hook use uutils|oxidizr-hook use gnu"
    "rollback|true|oxidizr-hook rollback"
    "disable|oxidizr-hook use uutils|oxidizr-hook disable"
    "pre-transaction|oxidizr-hook use uutils|pacman -R --noconfirm uutils-coreutils"
    "post-transaction|oxidizr-hook use uutils|pacman -U --noconfirm $pkg"
    "pin|oxidizr-hook use uutils|oxidizr-hook pin ls cp"
    "pre-upgrade|oxidizr-hook use uutils|pacman -U --noconfirm $upkg"
    "self-removal|oxidizr-hook use uutils|pacman -R --noconfirm oxidizr-arch"
    "verify-repair|$damage|oxidizr-hook verify --repair"
)
: >/artifacts/e2e-crash-matrix.ops
total_points=0
for spec in "${ops[@]}"; do
    IFS='|' read -r label setup op <<<"$spec"
    # A developer's loop may run some operations only (OXIDIZR_MATRIX_ONLY=
    # "disable pin"); the floors of test-orch/floors fail a full run that
    # misses any operation's kill points.
    if [ -n "${OXIDIZR_MATRIX_ONLY:-}" ] && [[ " $OXIDIZR_MATRIX_ONLY " != *" $label "* ]]; then
        continue
    fi
    setup_layer "$setup"
    mapfile -t points < <(points_of "$op")
    [ "${#points[@]}" -gt 0 ] || { failc=$((failc + 1)); echo "FAILED: $label passes no crash point"; continue; }
    step "$label: ${#points[@]} kill points"
    : >/tmp/results
    i=0
    for p in "${points[@]}"; do
        i=$((i + 1))
        [ "$(jobs -rp | wc -l)" -lt 2 ] || wait -n
        kill_case "$label" "$op" "$p" "$i" &
    done
    wait
    grep FAILED /tmp/results || true
    pass=$((pass + $(grep -c '^ok$' /tmp/results || true)))
    failc=$((failc + $(grep -c '^FAILED' /tmp/results || true)))
    missing=$(( ${#points[@]} - $(wc -l </tmp/results) ))
    [ "$missing" = 0 ] || { failc=$((failc + missing)); echo "FAILED: $missing cases of $label reported nothing"; }
    total_points=$((total_points + ${#points[@]}))
    echo "$label ${#points[@]}" >>/artifacts/e2e-crash-matrix.ops
done
rm -rf /tmp/layer
step "crash matrix: $total_points kill points over ${#ops[@]} operations: $pass passed, $failc failed"
[ "$failc" = 0 ]
