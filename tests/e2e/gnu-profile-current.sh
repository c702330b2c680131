#!/usr/bin/env bash
# Issue 12 item 7: while uutils is active, every transaction that changes a
# family's packages leaves profiles/gnu naming a candidate-smoked generation
# of the installed GNU versions: canary runs the installed GNU, and GC frees
# the store of older versions.
. /src/tests/e2e/common.bash
lib=/usr/lib/oxidizr-arch
facts=/var/log/oxidizr-arch/facts.jsonl
mkdir -p /etc/oxidizr-arch
write_config 'keep_generations = 1'
install_all
install_oxidizr
"$OXIDIZR" use uutils >/dev/null

# gnu_profile_is VERSION: profiles/gnu's ls and find are the stored GNU of
# coreutils VERSION, its manifest names it, and its candidate smoke passed.
gnu_profile_is() {
    local g
    g=$(readlink $lib/profiles/gnu) || fail "no profiles/gnu pointer"
    g=${g#../generations/}
    [ "$(readlink -f $lib/profiles/gnu/bin/ls)" = "$lib/store/gnu/coreutils-$1/ls" ] \
        || fail "profiles/gnu (generation $g) ls is $(readlink -f $lib/profiles/gnu/bin/ls), not coreutils $1's"
    jq -e --arg v "$1" '.packages.coreutils == $v and .profile == "gnu" and .smoke.passed' \
        $lib/generations/$g/manifest.json >/dev/null || fail "generation $g's manifest is not a passed GNU $1 generation"
}

step "use uutils: profiles/gnu names a GNU generation of coreutils 9.10-1"
gnu_profile_is 9.10-1
"$OXIDIZR" canary -- ls --version 2>/dev/null | head -1 | grep -q "GNU coreutils" || fail "canary is not GNU"

for v in 9.11-1 9.12-1; do
    step "pacman -U coreutils $v under uutils: profiles/gnu follows"
    pacman_U "$(mkpkg coreutils "$v")" >/tmp/pacman.out 2>&1
    grep -q "command failed\|warning: profiles/gnu" /tmp/pacman.out && { cat /tmp/pacman.out; fail "the post hook failed"; }
    gnu_profile_is "$v"
    grep '"stage":"profile-gnu"' $facts | tail -1 | grep -q 'profiles/gnu -> generation' || fail "no profile-gnu fact"
    /usr/bin/ls --version | head -1 | grep -qi uutils || fail "the switch is not kept"
    "$OXIDIZR" canary -- sh -c 'readlink -f "$(command -v ls)"' 2>/dev/null | grep -qx "$lib/store/gnu/coreutils-$v/ls" \
        || fail "canary's ls is not the installed GNU $v"
    expect_exit 0 "$OXIDIZR" verify
done

step "GC freed the store of the versions no generation or sidecar uses"
[ ! -e $lib/store/gnu/coreutils-9.10-1 ] || fail "the store of coreutils 9.10-1 is kept: $(ls $lib/store/gnu)"
[ -d $lib/store/gnu/coreutils-9.12-1 ] || fail "the store of the installed coreutils is gone"

step "a uutils-only upgrade changes no GNU binary: profiles/gnu stays"
before=$(readlink $lib/profiles/gnu)
pacman_U "$(mkpkg uutils-coreutils 0.12.0-2)" >/dev/null 2>&1
[ "$(readlink $lib/profiles/gnu)" = "$before" ] || fail "profiles/gnu moved on a uutils-only upgrade"
every_applet_resolves
step "ok"
