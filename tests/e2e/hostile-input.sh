#!/usr/bin/env bash
# Hostile input and environment: hook stdin empty, closed or garbage;
# packages missing from the database; read-only mounts; ENOSPC on a tiny
# tmpfs. Each case runs in its own nested root (tests/e2e/hostile-common.bash)
# and asserts the error id and exit code, that every applet still resolves,
# that no GNU binary was lost, and, where the command refuses, that nothing
# changed.
. /src/tests/e2e/hostile-common.bash
hostile_setup
L=$M/usr/lib/oxidizr-arch
S=$M/var/lib/oxidizr-arch
n_applets=$(wc -l </etc/hostile.applets)

# hook_stdin_cases: garbage on stdin is E_USAGE and changes nothing; empty
# and closed stdin work (pacman gives no targets).
hook_stdin_cases() {
    local hook input
    for hook in "post-transaction" "pre-transaction --operation remove" "pre-transaction --operation upgrade"; do
        for input in 'coreutils; rm -rf /' '../../etc/passwd' '--help'; do
            case_begin "$hook, stdin '$input'"
            snap
            expect_error E_USAGE $hook < <(printf 'uutils-coreutils\n%s\n' "$input")
            reason_has "is not a package name"
            unchanged; intact
            case_end
        done
        case_begin "$hook, binary garbage on stdin"
        snap
        expect_error E_USAGE $hook < <(head -c 4096 /dev/urandom)
        unchanged; intact
        case_end
        case_begin "$hook, empty and closed stdin"
        snap
        expect_ok $hook </dev/null
        expect_ok $hook <&-
        unchanged; intact
        case_end
    done
}

step "never used"
hook_stdin_cases

case_begin "no GNU package in the database"
rm -rf $M/var/lib/pacman/local/coreutils-* $M/var/lib/pacman/local/findutils-*; snap
expect_error E_POLICY use uutils
reason_has "nothing to manage"
unchanged; intact
case_end

case_begin "the package database does not exist"
snap
expect_error E_ALPM --dbpath /nonexistent use uutils
expect_error E_ALPM --dbpath /nonexistent status
unchanged; intact
case_end

case_begin "ENOSPC: a 64 KiB tmpfs at /usr/lib/oxidizr-arch"
mkdir -p $L; mount -t tmpfs -o size=64k tmpfs $L; snap
expect_error E_EXDEV use uutils
reason_has "No space left on device"
diff <(grep '^usr/bin/' /tmp/tree.before) <(tree $M | grep '^usr/bin/') || fail "$CASE: /usr/bin changed"
[ -z "$(find $L -name '.oxidizr-tmp*')" ] || fail "$CASE: temporary files left: $(find $L -name '.oxidizr-tmp*')"
[ ! -e $L/active ] || fail "$CASE: active was created"
intact
case_end

case_begin "ENOSPC: the store fits, the generation does not (inode-limited tmpfs)"
mkdir -p $L; mount -t tmpfs -o size=64m,nr_inodes=$((n_applets + 12)) tmpfs $L; snap
expect_error E_IO use uutils
reason_has "No space left on device"
diff <(grep '^usr/bin/' /tmp/tree.before) <(tree $M | grep '^usr/bin/') || fail "$CASE: /usr/bin changed"
[ ! -e $L/active ] || fail "$CASE: active was created"
degraded_with E_IO
intact
case_end

case_begin "read-only /usr/lib/oxidizr-arch"
mkdir -p $L; mount --bind $L $L; mount -o remount,bind,ro $L; snap
expect_error E_POLICY use uutils
reason_has "/usr/lib/oxidizr-arch is on a read-only mount"
unchanged; intact
case_end

case_begin "read-only /usr/bin: preflight refuses before any change"
mount --bind $M/usr/bin $M/usr/bin; mount -o remount,bind,ro $M/usr/bin; snap
expect_error E_POLICY use uutils
reason_has "/usr/bin is on a read-only mount: remount it read-write"
unchanged; intact
case_end

case_begin "noexec /usr/lib/oxidizr-arch: preflight refuses before any change"
mkdir -p $L; mount --bind $L $L; mount -o remount,bind,noexec $L; snap
expect_error E_POLICY use uutils
reason_has "/usr/lib/oxidizr-arch is on a noexec mount"
unchanged; intact
case_end

step "enabled: generation 1 (gnu), generation 2 (uutils, active)"
oxidizr-hook use gnu >/dev/null
oxidizr-hook use uutils >/dev/null
hook_stdin_cases

case_begin "read-only /usr/lib/oxidizr-arch, enabled: refused before any change"
mount --bind $L $L; mount -o remount,bind,ro $L; snap
expect_error E_POLICY use gnu
reason_has "/usr/lib/oxidizr-arch is on a read-only mount"
unchanged; intact
case_end

case_begin "read-only /var/lib/oxidizr-arch"
mount --bind $S $S; mount -o remount,bind,ro $S; snap
expect_error E_LOCKING use gnu
reason_has "Read-only file system"
unchanged; intact
case_end

case_begin "coreutils missing from the database while enabled"
rm -rf $M/var/lib/pacman/local/coreutils-*
expect_ok use uutils
# Its applets are no longer managed: back to the pristine GNU files;
# findutils stays managed.
while read -r sum a; do
    [ -f "$M/usr/bin/$a" ] && [ ! -L "$M/usr/bin/$a" ] || continue
    [ "$(sha256sum <"$M/usr/bin/$a" | cut -d' ' -f1)" = "$sum" ] || fail "$CASE: /usr/bin/$a is not the pristine GNU file"
done </etc/hostile.pristine
for a in cat ls '['; do
    [ -f "$M/usr/bin/$a" ] && [ ! -L "$M/usr/bin/$a" ] || fail "$CASE: /usr/bin/$a is not a file again"
done
[ "$(readlink $M/usr/bin/find)" = /usr/lib/oxidizr-arch/active/bin/find ] || fail "$CASE: find is not managed"
intact
case_end

hostile_done hostile-input
