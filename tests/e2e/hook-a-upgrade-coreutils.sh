#!/usr/bin/env bash
# (a) uutils active -> pacman -U a newer coreutils -> every applet resolves
# per the profile, the store holds the new GNU version, verify exits 0,
# pacman.log has our one success line.
. /src/tests/e2e/common.bash
install_all
install_oxidizr
"$OXIDIZR" use uutils

step "pacman -U coreutils 9.11-1 (the post-transaction hook runs inside)"
pacman_U "$(mkpkg coreutils 9.11-1)" 2>&1 | tee /tmp/pacman.out
grep -q "oxidizr-arch: profile uutils active: generation" /tmp/pacman.out || fail "no success line from the hook"
every_applet_resolves
/usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not uutils after the upgrade"
/usr/bin/stty --version >/dev/null || fail "stty does not run"
[ -d /usr/lib/oxidizr-arch/store/gnu/coreutils-9.11-1 ] || fail "the store lacks coreutils-9.11-1"
[ -f /usr/lib/oxidizr-arch/store/gnu/coreutils-9.11-1/ls ] || fail "the store lacks the new GNU ls"
managed_applets | while IFS= read -r a; do
    [ "$(readlink "/usr/bin/$a")" = "/usr/lib/oxidizr-arch/active/bin/$a" ] || fail "/usr/bin/$a is not our link after the upgrade"
done
expect_exit 0 "$OXIDIZR" verify
step "pacman.log"
grep -c "oxidizr-arch: profile uutils active" /var/log/pacman.log | grep -qx 1 || { our_log_lines; fail "pacman.log should hold exactly one success line"; }
our_log_lines | tail -3

step "reinstall the same findutils version while uutils is active (pacman -U again)"
pacman_U "$(mkpkg findutils 4.11.0-1)" 2>&1 | tee /tmp/pacman2.out | tail -2
grep -q "command failed" /tmp/pacman2.out && fail "the hook failed on a reinstall"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

# The candidate smoke of each hooked transaction, from the facts log.
last_candidate() { grep '"operation":"post-transaction","stage":"smoke-candidate"' /var/log/oxidizr-arch/facts.jsonl | tail -1; }

step "the coreutils upgrade changed no uutils binary: every candidate verdict was carried over"
grep '"operation":"post-transaction","stage":"smoke-candidate"' /var/log/oxidizr-arch/facts.jsonl | head -1 \
    | grep -q '(0 executed, ' || fail "the hook re-executed checks of unchanged binaries: $(last_candidate)"

step "a uutils upgrade changes every uutils binary: every applet check executes again"
pacman_U "$(mkpkg uutils-coreutils 0.12.0-2)" >/dev/null
n=$(managed_applets | wc -l)
last_candidate | grep -qE "\(([0-9]+) executed" || fail "no candidate smoke fact: $(last_candidate)"
executed=$(last_candidate | sed -E 's/.*\(([0-9]+) executed.*/\1/')
[ "$executed" -ge "$n" ] || fail "only $executed checks executed after a uutils upgrade ($n applets)"

step "reuse_smoke_verdicts = false: the hooks execute every check every time"
mkdir -p /etc/oxidizr-arch
write_config 'reuse_smoke_verdicts = false'
pacman_U "$(mkpkg coreutils 9.10-1)" >/dev/null
last_candidate | grep -q ', 0 unchanged binaries)' || fail "verdicts were carried over against the config: $(last_candidate)"
every_applet_resolves
expect_exit 0 "$OXIDIZR" verify

step "a coreutils upgrade under uutils changes no link: the new generation shares the links of the last tree"
lib=/usr/lib/oxidizr-arch
write_config 'reuse_smoke_verdicts = true'
# The active generation (built by the coreutils transaction above) shares
# the links of the generation that owns its tree.
active=$(readlink "$lib/active"); active=${active#generations/}
owner=$(readlink "$lib/generations/$active/bin") || fail "generation $active has its own tree"
owner=${owner#../}; owner=${owner%/bin}
[ -d "$lib/generations/$owner/bin" ] && [ ! -L "$lib/generations/$owner/bin" ] || fail "generation $owner should own its links"
for v in 9.11-1 9.9-1 9.10-1 9.11-1 9.9-1; do
    pacman_U "$(mkpkg coreutils "$v")" >/dev/null
    g=$(readlink "$lib/active"); g=${g#generations/}
    [ "$(readlink "$lib/generations/$g/bin")" = "../$owner/bin" ] \
        || fail "generation $g does not share generation $owner's links: $(ls -ld "$lib/generations/$g/bin")"
    every_applet_resolves
done
# GC kept at most keep_generations (3) that were active + profiles/gnu, and the owner of the shared links.
[ -d "$lib/generations/$owner/bin" ] || fail "GC removed generation $owner, whose links the active generation uses"
ls "$lib/generations"
[ "$(ls "$lib/generations" | wc -l)" -le 5 ] || fail "GC kept too many generations: $(ls "$lib/generations" | tr '\n' ' ')"
expect_exit 0 "$OXIDIZR" verify

step "a shared-links pointer that names no generation is found and repaired"
# The oldest generation other than the active one whose bin is a shared
# pointer (profiles/gnu's generations own their trees).
old=
for c in $(ls "$lib/generations" | sort -n); do
    [ "$c" != "$g" ] && [ -L "$lib/generations/$c/bin" ] && { old=$c; break; }
done
[ -n "$old" ] || fail "no older generation with a shared-links pointer to damage: $(ls -l "$lib/generations")"
ln -sfn ../999/bin "$lib/generations/$old/bin"
[ "$(readlink "$lib/generations/$old/bin")" = ../999/bin ] || fail "setup: the pointer of generation $old was not damaged"
expect_exit 1 "$OXIDIZR" verify
{ "$OXIDIZR" verify 2>&1 || true; } | grep -q "is not a tree of links of ours" || fail "the bad shared pointer is not named"
"$OXIDIZR" verify --repair >/dev/null
expect_exit 0 "$OXIDIZR" verify
every_applet_resolves
