#!/usr/bin/env bash
# `test-orch/run bench`: the benchmarks of issue 7, in a fresh scenario root
# (docs/PERFORMANCE.md shows a run and reads it).
#
#  1. the post-transaction hook inside real `pacman -U coreutils`
#     transactions with the full real applet sets (every GNU coreutils +
#     findutils command, every uutils counterpart, `use uutils`), phase by
#     phase from the facts log, and the hook process's wall time;
#     1b. the same inside `pacman -U uutils-coreutils` (every uutils binary
#     changes: every smoke check executes);
#  2. the same transactions without our hooks (interleaved), and the ratio;
#  3-5. flip latency, rebuild cost and the per-target baseline on tmpfs
#     (/tmp) and on a loop-mounted ext4 (real fsync);
#  6. where the hook's time goes (smoke variants, exec costs, ALPM load);
#  7. the hook's per-applet primitives (harvest, take-over) and their
#     fsyncs, on tmpfs, ext4 and the root's own filesystem.
#
# OXIDIZR_BENCH_RUNS (default 25, at least 20) sets the number of measured
# transactions of each kind. Nothing here asserts a time: it reports.
# The product's defaults (policy recommended, differential checks on): the
# hooks measured here run the differential cases of the binaries that changed.
OXIDIZR_E2E_DEFAULT_CONFIG=1
. /src/tests/e2e/common.bash
runs=${OXIDIZR_BENCH_RUNS:-25}
[ "$runs" -ge 20 ] || fail "OXIDIZR_BENCH_RUNS must be at least 20 (medians and p95 over >= 20 runs)"
work=/var/tmp/oxidizr-bench
rm -rf "$work"
mkdir -p "$work/hooks-off"
samples=$work/samples.tsv
: >"$samples"
ext4_mnt=/mnt/oxidizr-bench-ext4
ext4_img=/var/tmp/oxidizr-bench-ext4.img
t_start=$SECONDS

cleanup_ext4() {
    mountpoint -q "$ext4_mnt" && umount "$ext4_mnt"
    rm -f "$ext4_img"
}
trap cleanup_ext4 EXIT

step "testbed: $(tr '\n' ';' </etc/oxidizr-testbed-versions)"
step "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# The hook under test: a release build without features (no crash points).
# The bench driver: a release build with --features bench. Both are copied
# out of /target at once (other runs may share it).
step "cargo build --release (oxidizr-hook without features; oxidizr-bench from the devtools member)"
(cd /src && cargo build --release --locked --quiet --bin oxidizr-hook) || fail "cannot build oxidizr-hook"
cp /target/release/oxidizr-hook "$work/oxidizr-hook"
(cd /src && cargo build --release --locked --quiet -p oxidizr-devtools --bin oxidizr-bench) || fail "cannot build oxidizr-bench"
cp /target/release/oxidizr-bench "$work/oxidizr-bench"
bench=$work/oxidizr-bench

# Three versions of coreutils (the same real binaries): every transaction
# installs a version other than the one installed before it, and every
# hooked one a version other than the last hooked one, so the hook always
# harvests and builds a new generation (the realistic upgrade workload).
# Built first: mkpkg packs what /usr/bin holds, which must be the GNU files.
versions=(9.9-1 9.10-1 9.11-1)
declare -A pkg
for v in "${versions[@]}"; do
    pkg[$v]=$(mkpkg coreutils "$v")
    bsdtar -tvf "${pkg[$v]}" usr/bin/ls 2>/dev/null | grep -q '^-' \
        || fail "${pkg[$v]} does not hold a regular usr/bin/ls (a package built from a switched root?)"
done

# Three uutils-coreutils versions (the same real binaries, each a new file
# to pacman): the workload where every uutils binary changes and the
# candidate smoke executes every check (section 1b).
# Each version's multicall binary has other bytes (MKPKG_SALT), as a real
# upgrade's has: the hook re-runs the uutils side of every differential case.
uu_versions=(0.12.0-5 0.12.0-6 0.12.0-7)
declare -A uupkg
for v in "${uu_versions[@]}"; do uupkg[$v]=$(MKPKG_SALT="bench $v" mkpkg uutils-coreutils "$v"); done

step "scenario: pacman -U coreutils, findutils, uutils-coreutils, uutils-findutils, oxidizr-arch; use uutils"
install_all
OXIDIZR_BIN=$work/oxidizr-hook install_oxidizr
"$OXIDIZR" use uutils >/dev/null || fail "oxidizr-hook use uutils failed"
step "$(managed_applets | wc -l) managed applets: $(ql_bin coreutils | wc -l) from coreutils, $(ql_bin findutils | wc -l) from findutils"

# The post-transaction hook runs under the timing wrapper: pacman execs the
# wrapper, which runs the hook (stdin, stdout inherited) and records its wall time.
hooks=/usr/share/libalpm/hooks
post=$hooks/90-oxidizr-arch-post.hook
sed -i "s|^Exec = /usr/bin/oxidizr-hook post-transaction\$|Exec = $bench time $samples hook/wall /usr/bin/oxidizr-hook post-transaction|" "$post"
grep -q "^Exec = $bench time" "$post" || fail "cannot instrument $post"
hooks_off() { mv "$hooks"/*oxidizr-arch*.hook "$work/hooks-off/"; }
hooks_on() { mv "$work/hooks-off"/*.hook "$hooks/"; }

# transaction N WITH(1|0) RECORD(1|0)
transaction() {
    local n=$1 with=$2 record=$3 key out=$samples
    local v=${versions[$(( (n + 2) % 3 ))]}
    [ "$record" = 1 ] || out=/dev/null
    if [ "$with" = 1 ]; then key=pacman/with; else key=pacman/without; hooks_off; fi
    if [ "$record" = 0 ] && [ "$with" = 1 ]; then
        # Warm-up: the wrapper must not record either.
        sed -i "s|time $samples hook/wall|time /dev/null hook/wall|" "$post"
    fi
    "$bench" time "$out" "$key" pacman -U --noconfirm --overwrite '*' "${pkg[$v]}" >"$work/pacman.log" 2>&1 \
        || { cat "$work/pacman.log"; fail "pacman -U coreutils $v failed"; }
    if [ "$with" = 1 ]; then
        grep -q "oxidizr-arch: profile uutils active: generation" "$work/pacman.log" \
            || { cat "$work/pacman.log"; fail "the hook did not build a new generation (coreutils $v)"; }
        if [ "$record" = 1 ]; then "$bench" record-hook "$samples"; fi
        sed -i "s|time /dev/null hook/wall|time $samples hook/wall|" "$post"
    else
        hooks_on
    fi
}

step "warm-up: 2 transactions with and 2 without our hooks (not recorded)"
n=0
for _ in 1 2; do
    transaction $n 1 0; n=$((n + 1))
    transaction $n 0 0; n=$((n + 1))
done
step "$runs pacman -U coreutils with our hooks, $runs without, interleaved"
for i in $(seq "$runs"); do
    transaction $n 1 1; n=$((n + 1))
    transaction $n 0 1; n=$((n + 1))
    if [ $((i % 5)) = 0 ]; then step "  $i/$runs"; fi
done
# Leave the system as the last hooked transaction made it: links repaired.
transaction $n 1 0

step "$runs pacman -U uutils-coreutils with our hooks (every uutils binary changes)"
sed -i "s|time $samples hook/wall|time $samples hook-uu/wall|" "$post"
for i in $(seq 0 "$runs"); do
    v=${uu_versions[$((i % 3))]}
    pacman -U --noconfirm "${uupkg[$v]}" >"$work/pacman.log" 2>&1 \
        || { cat "$work/pacman.log"; fail "pacman -U uutils-coreutils $v failed"; }
    grep -q "oxidizr-arch: profile uutils active: generation" "$work/pacman.log" \
        || { cat "$work/pacman.log"; fail "the hook did not build a new generation (uutils-coreutils $v)"; }
    # The first one (from the installed 0.12.0-1) is a warm-up: not recorded.
    if [ "$i" -gt 0 ]; then "$bench" record-hook "$samples" hook-uu; else sed -i '$d' "$samples"; fi
    if [ $((i % 5)) = 0 ] && [ "$i" -gt 0 ]; then step "  $i/$runs"; fi
done
sed -i "s|time $samples hook-uu/wall|time $samples hook/wall|" "$post"

step "flip, rebuild and per-target baseline on tmpfs (/tmp)"
findmnt -no FSTYPE -T /tmp | grep -qx tmpfs || fail "/tmp is not a tmpfs"
"$bench" fs "$samples" tmpfs /tmp/oxidizr-bench-fs
"$bench" takeover "$samples" tmpfs /tmp/oxidizr-bench-fs

step "the same on a loop-mounted ext4 (sparse file under /var/tmp)"
truncate -s 1G "$ext4_img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$ext4_img"
mkdir -p "$ext4_mnt"
mount -o loop "$ext4_img" "$ext4_mnt"
"$bench" fs "$samples" ext4 "$ext4_mnt/oxidizr-bench-fs"
"$bench" takeover "$samples" ext4 "$ext4_mnt/oxidizr-bench-fs"
cleanup_ext4

root_fs=$(findmnt -no FSTYPE -T /)
step "where the hook's time goes (the per-applet primitives on the root's $root_fs; live root: smoke variants, exec costs, ALPM load)"
[ "$(findmnt -no SOURCE -T /var/tmp)" = "$(findmnt -no SOURCE -T /)" ] || fail "/var/tmp is not on the root filesystem"
"$bench" takeover "$samples" "root-$root_fs" /var/tmp/oxidizr-bench-fs
rmdir /var/tmp/oxidizr-bench-fs
"$bench" live "$samples"

step "done in $((SECONDS - t_start)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$bench" report "$samples"
