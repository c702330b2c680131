#!/usr/bin/env bash
# Invariant 7 (DESIGN.md §6): every managed command works for every user,
# whatever the admin's umask. With umask 077 and then 027 (sudo applies the
# union with 022), the main flows run with real pacman: `use uutils`, a
# coreutils upgrade through the real post hook, `rollback`, `canary`,
# `use gnu`. After each one an unprivileged user (uid/gid 65534, no groups)
# runs the managed commands from a shell — `setpriv CMD` without a shell
# runs a binary even behind a directory it cannot search (TESTBED.md) — and
# every directory we created has mode 0755. Then damage: one of our
# directories chmod 0700 -> `verify` exits 1 naming it -> `verify --repair`
# -> healthy, and the user runs the commands again; a directory that is not
# ours (/usr/lib) is reported but never changed by the repair.
. /src/tests/e2e/common.bash

LIB=/usr/lib/oxidizr-arch
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# A script started through `#!/usr/bin/env sh`, as every such script is.
printf '#!/usr/bin/env sh\necho env-script-ran\n' >/tmp/env-script
chmod 0755 /tmp/env-script

# user_runs_commands WHEN: an unprivileged user runs ls, env (a
# `#!/usr/bin/env` script), find and cat from a shell, and may execute
# every managed applet (access(2) with X_OK checks every directory on the
# way as that user).
user_runs_commands() {
    local when=$1 out denied
    out=$(as_nobody sh -c '/usr/bin/ls / >/dev/null && /usr/bin/env true && /usr/bin/find /etc -maxdepth 0 >/dev/null \
        && /usr/bin/cat /etc/hostname /dev/null >/dev/null && /tmp/env-script' 2>&1) \
        || fail "after $when: an unprivileged user cannot run the managed commands: $out"
    [ "$out" = env-script-ran ] || fail "after $when: unexpected output from the unprivileged user: $out"
    denied=$(managed_applets | as_nobody sh -c 'while IFS= read -r a; do [ -x "/usr/bin/$a" ] || printf "%s " "$a"; done')
    [ -z "$denied" ] || fail "after $when: not executable for an unprivileged user: $denied"
}

# our_modes_are_intended WHEN: every directory of ours is 0755 (the
# quarantine's contents are not ours), every file we wrote is 0644 (the
# lock file 0600).
our_modes_are_intended() {
    local when=$1 p m bad=
    shopt -s globstar dotglob nullglob
    for p in "$LIB" "$LIB"/** /var/lib/oxidizr-arch /var/lib/oxidizr-arch/** /var/log/oxidizr-arch /var/log/oxidizr-arch/**; do
        case $p in "$LIB"/quarantine/*) continue ;; esac
        [ -L "$p" ] && continue
        m=$(stat -c %a "$p")
        if [ -d "$p" ]; then
            [ "$m" = 755 ] || bad="$bad $p=$m"
        elif [ "$p" = /var/lib/oxidizr-arch/lock ]; then
            [ "$m" = 600 ] || bad="$bad $p=$m"
        else
            case $p in
            "$LIB"/store/*) ;; # pacman's inodes, hard-linked: their modes are pacman's
            *) [ "$m" = 644 ] || bad="$bad $p=$m" ;;
            esac
        fi
    done
    shopt -u globstar dotglob nullglob
    [ -z "$bad" ] || fail "after $when: modes other than intended:$bad"
}

after() {
    user_runs_commands "$1"
    our_modes_are_intended "$1"
    expect_exit 0 "$OXIDIZR" verify
}

install_all
command -v busybox >/dev/null && fail "precondition: a stock Arch root has no busybox"
install_oxidizr
uid_before=$(id -u)
[ "$uid_before" = 0 ] || fail "precondition: the scenario runs as root"

for mask in 077 027; do
    step "umask $mask: use uutils"
    umask "$mask"
    [ "$(umask)" = "0$mask" ] || fail "precondition: umask $mask not set"
    "$OXIDIZR" use uutils >/dev/null
    /usr/bin/ls --version | head -1 | grep -qi uutils || fail "ls is not uutils"
    after "use uutils (umask $mask)"

    step "umask $mask: a coreutils upgrade through the real post hook"
    pacman_U "$(mkpkg coreutils 9.11-1)" 2>&1 | tee /tmp/pacman.out | tail -2
    grep -q "oxidizr-arch: profile uutils active: generation" /tmp/pacman.out || fail "no success line from the hook"
    [ -d "$LIB/store/gnu/coreutils-9.11-1" ] || fail "the hook did not harvest coreutils 9.11-1"
    after "the coreutils upgrade (umask $mask)"

    step "umask $mask: rollback"
    "$OXIDIZR" rollback >/dev/null
    user_runs_commands "rollback (umask $mask)"
    our_modes_are_intended "rollback (umask $mask)"
    # A rolled-back generation is older than the installed packages: verify
    # says so (stale-plan), and nothing else.
    "$OXIDIZR" verify >/tmp/verify.out 2>&1 || true
    grep '^==> problem' /tmp/verify.out | grep -v '^==> problem \[stale-plan\]' && fail "verify finds more than the rollback after it"

    step "umask $mask: canary, by root and by an unprivileged user"
    "$OXIDIZR" canary -- ls --version 2>/dev/null | head -1 | grep -q "GNU coreutils" || fail "root's canary does not run GNU ls"
    out=$(as_nobody sh -c "$OXIDIZR canary -- sh -c 'ls --version && ls / >/dev/null'" 2>&1) \
        || fail "an unprivileged user's canary failed: $out"
    printf '%s\n' "$out" | grep -q "GNU coreutils" || fail "an unprivileged user's canary did not reach GNU ls: $out"

    step "umask $mask: use gnu"
    "$OXIDIZR" use gnu >/dev/null
    /usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "ls is not GNU"
    after "use gnu (umask $mask)"

    step "umask $mask: damage: our directories chmod 0700 -> verify names each -> repair"
    for d in "$LIB/store" "$LIB" /var/lib/oxidizr-arch; do
        chmod 0700 "$d"
        # The check is sensitive: that user is locked out now (store and
        # lib hold every GNU command the gnu profile runs).
        if [ "$d" != /var/lib/oxidizr-arch ]; then
            as_nobody sh -c '/usr/bin/ls / >/dev/null' 2>/dev/null && fail "precondition: $d at 0700 should lock the user out"
        fi
        expect_exit 1 "$OXIDIZR" verify
        "$OXIDIZR" verify >/tmp/verify.out 2>&1 || true
        grep -qF "$d " /tmp/verify.out || { cat /tmp/verify.out; fail "verify does not name $d"; }
        "$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "verify --repair failed for $d"; }
        [ "$(stat -c %a "$d")" = 755 ] || fail "verify --repair left $d at $(stat -c %a "$d")"
        after "repairing $d (umask $mask)"
    done

    step "umask $mask: damage under the uutils profile: a generation's links directory"
    "$OXIDIZR" use uutils >/dev/null
    active=$(readlink "$LIB/active")
    owner=$active/bin
    [ -L "$LIB/$owner" ] && owner=generations/$(readlink "$LIB/$owner" | sed 's|^\.\./||')
    [ -d "$LIB/$owner" ] && [ ! -L "$LIB/$owner" ] || fail "precondition: $LIB/$owner is the links directory"
    chmod 0700 "$LIB/$owner"
    as_nobody sh -c '/usr/bin/ls / >/dev/null' 2>/dev/null && fail "precondition: $LIB/$owner at 0700 should lock the user out"
    "$OXIDIZR" verify >/tmp/verify.out 2>&1 && fail "verify exits 0 with $LIB/$owner at 0700"
    grep -qF "$LIB/$owner " /tmp/verify.out || { cat /tmp/verify.out; fail "verify does not name $LIB/$owner"; }
    grep -q "problem \[unreachable\]" /tmp/verify.out || { cat /tmp/verify.out; fail "verify does not say the commands are unreachable"; }
    "$OXIDIZR" verify --repair >/tmp/repair.out 2>&1 || { cat /tmp/repair.out; fail "verify --repair failed"; }
    after "repairing $LIB/$owner (umask $mask)"

    step "umask $mask: a directory that is not ours is reported, never changed"
    chmod 0700 /usr/lib
    "$OXIDIZR" verify >/tmp/verify.out 2>&1 && fail "verify exits 0 with /usr/lib at 0700"
    grep -qF "/usr/lib (mode 0700)" /tmp/verify.out || { cat /tmp/verify.out; fail "verify does not name /usr/lib"; }
    expect_exit 1 "$OXIDIZR" verify --repair
    [ "$(stat -c %a /usr/lib)" = 700 ] || fail "verify --repair changed the mode of /usr/lib, which is not ours"
    chmod 0755 /usr/lib
    "$OXIDIZR" verify --repair >/dev/null || true
    after "/usr/lib restored by hand (umask $mask)"

    step "umask $mask: back to a clean slate (pacman -R oxidizr-arch restores GNU and purges our trees)"
    umask 022
    pacman -R --noconfirm oxidizr-arch >/tmp/pacman-r.out 2>&1 || { cat /tmp/pacman-r.out; fail "pacman -R oxidizr-arch failed"; }
    /usr/bin/ls --version | head -1 | grep -q "GNU coreutils" || fail "GNU ls is not back after removal"
    # Whatever removal leaves (state, logs) goes, so the next umask creates everything anew.
    rm -rf "$LIB" /var/lib/oxidizr-arch /var/log/oxidizr-arch
    pacman_U "$(mkpkg coreutils 9.10-1)" >/dev/null
    install_oxidizr
done
step "passed: umask 077 and 027"
