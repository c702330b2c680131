#!/usr/bin/env bash
# Hostile state and layout: truncated or corrupt state file, sidecar,
# manifest and intent; foreign files and symlinks planted in the store, the
# generations, the profiles; a managed /usr/bin path replaced by a
# directory, a fifo or someone else's symlink. Each case runs in its own
# nested root (tests/e2e/hostile-common.bash) and asserts the error id and
# exit code, that every applet still resolves, that no GNU binary was lost,
# and, where the command refuses, that nothing changed.
. /src/tests/e2e/hostile-common.bash
hostile_setup
L=$M/usr/lib/oxidizr-arch
S=$M/var/lib/oxidizr-arch
mkdir -p /etc/victim; echo precious >/etc/victim/file

step "never used: hostile /usr/bin entries and planted trees"

case_begin "a directory at /usr/bin/ls"
rm $M/usr/bin/ls; mkdir $M/usr/bin/ls; snap
expect_error E_OWNERSHIP use uutils
reason_has "/usr/bin/ls is a directory"
unchanged; intact ls
case_end

case_begin "a fifo at /usr/bin/cat"
rm $M/usr/bin/cat; mkfifo $M/usr/bin/cat; snap
expect_error E_OWNERSHIP use uutils
reason_has "/usr/bin/cat"
unchanged; intact cat
case_end

case_begin "someone else's symlink at /usr/bin/cat"
ln -sfn /usr/bin/busybox $M/usr/bin/cat; snap
expect_error E_OWNERSHIP use uutils
reason_has "/usr/bin/cat is a symlink"
unchanged; intact cat
case_end

case_begin "someone else's symlink planted in the store at an applet's name"
mkdir -p $L/store/gnu/coreutils-9.10-1; ln -s /etc/victim/file $L/store/gnu/coreutils-9.10-1/ls; snap
expect_error E_OWNERSHIP use uutils
reason_has "coreutils-9.10-1/ls is a symlink"
# Harvesting may have added links of other applets to the store; nothing else.
diff <(grep -v '^usr/lib/oxidizr-arch/store/' /tmp/tree.before) <(tree $M | grep -v '^usr/lib/oxidizr-arch/store/') ||
    fail "$CASE: something besides the store changed"
[ "$(readlink $L/store/gnu/coreutils-9.10-1/ls)" = /etc/victim/file ] || fail "$CASE: the planted link was replaced"
[ "$(cat $M/etc/victim/file)" = precious ] || fail "$CASE: the victim changed"
intact
case_end

case_begin "a different regular file planted in the store at an applet's name"
mkdir -p $L/store/gnu/coreutils-9.10-1; echo planted >$L/store/gnu/coreutils-9.10-1/ls
# The store holds what pacman installed for that version: the planted bytes are replaced.
expect_ok use uutils
[ "$(sha256sum <$L/store/gnu/coreutils-9.10-1/ls | cut -d' ' -f1)" = "$(awk '$2 == "ls" { print $1 }' /etc/hostile.pristine)" ] ||
    fail "$CASE: the store does not hold pacman's ls"
intact
case_end

case_begin "the store's package directory is a symlink to /etc/victim"
mkdir -p $L/store/gnu; ln -s /etc/victim $L/store/gnu/coreutils-9.10-1; snap
expect_error E_POLICY use uutils
reason_has "symlinks are never followed"
unchanged; intact
[ "$(ls $M/etc/victim)" = file ] || fail "$CASE: something was created in the victim"
case_end

case_begin "/usr/lib/oxidizr-arch is a symlink to /etc/victim"
mkdir -p $M/usr/lib; ln -s /etc/victim $L; snap
expect_error E_POLICY use uutils
unchanged; intact
[ "$(ls $M/etc/victim)" = file ] || fail "$CASE: something was created in the victim"
case_end

case_begin "generations/1 planted as a symlink to /etc/victim"
mkdir -p $L/generations; ln -s /etc/victim $L/generations/1; snap
expect_error E_POLICY use uutils
reason_has "cannot publish"
diff <(grep '^usr/bin/' /tmp/tree.before) <(tree $M | grep '^usr/bin/') || fail "$CASE: /usr/bin changed"
[ ! -e $L/active ] || fail "$CASE: active was created"
[ "$(readlink $L/generations/1)" = /etc/victim ] || fail "$CASE: the planted link was replaced"
[ "$(ls $M/etc/victim)" = file ] || fail "$CASE: something was created in the victim"
degraded_with E_POLICY
intact
case_end

case_begin "an unparsable configuration file"
mkdir -p $M/etc/oxidizr-arch; echo '[[[family' >$M/etc/oxidizr-arch/config.toml; snap
expect_error E_CONFIG use uutils
reason_has "/etc/oxidizr-arch/config.toml"
unchanged; intact
case_end

step "enabled: generation 1 (gnu), generation 2 (uutils, active)"
oxidizr-hook use gnu >/dev/null
oxidizr-hook use uutils >/dev/null
[ "$(readlink /usr/lib/oxidizr-arch/active)" = generations/2 ] || fail "setup: active is $(readlink /usr/lib/oxidizr-arch/active)"

# corrupt FILE BYTES: keeps only the first BYTES bytes (0: empty).
truncate_to() { head -c "$2" "$1" >/tmp/cut; cat /tmp/cut >"$1"; }

for how in "truncated:40" "empty:0"; do
    case_begin "state.json ${how%:*}"
    truncate_to $S/state.json "${how#*:}"; snap
    expect_error E_STATE_CORRUPT use gnu
    reason_has "/var/lib/oxidizr-arch/state.json is corrupt"
    expect_error E_STATE_CORRUPT status
    expect_error E_STATE_CORRUPT verify
    unchanged; intact
    case_end
done

case_begin "state.json of an unknown schema"
jq '.schema = 99' $S/state.json >/tmp/s; cat /tmp/s >$S/state.json; snap
expect_error E_STATE_CORRUPT use gnu
reason_has "unknown schema 99"
unchanged; intact
case_end

case_begin "state.json replaced by a symlink to /etc/passwd"
cp $M/etc/passwd /tmp/passwd.before
rm $S/state.json; ln -s /etc/passwd $S/state.json; snap
expect_error E_STATE_CORRUPT use gnu
reason_has "is a symlink, not a regular file"
unchanged; intact
cmp -s /tmp/passwd.before $M/etc/passwd || fail "$CASE: /etc/passwd changed"
case_end

for how in "truncated" "of another applet" "a symlink to /etc/passwd"; do
    case_begin "the sidecar of ls is $how"
    case $how in
    truncated) truncate_to $S/sidecars/ls.json 30 ;;
    "of another applet") cp $S/sidecars/cat.json $S/sidecars/ls.json ;;
    *) rm $S/sidecars/ls.json; ln -s /etc/passwd $S/sidecars/ls.json ;;
    esac
    snap
    # The active generation realizes the plan: only the links are checked.
    expect_error E_STATE_CORRUPT use uutils
    reason_has "/var/lib/oxidizr-arch/sidecars/ls.json"
    unchanged; intact
    in_nest oxidizr-hook verify --json >/tmp/verify.json && fail "$CASE: verify says healthy"
    jq -e '.problems | any(.code == "sidecar-damaged")' /tmp/verify.json >/dev/null ||
        { cat /tmp/verify.json; fail "$CASE: verify does not report sidecar-damaged"; }
    case_end
done

case_begin "the manifest of generation 1 (not active) is truncated"
truncate_to $L/generations/1/manifest.json 50; snap
expect_error E_STATE_CORRUPT rollback
reason_has "/usr/lib/oxidizr-arch/generations/1/manifest.json is corrupt"
unchanged; intact
in_nest oxidizr-hook generations >/tmp/gens || fail "$CASE: generations failed"
grep -q '1  damaged' /tmp/gens || { cat /tmp/gens; fail "$CASE: generations does not show the damage"; }
in_nest oxidizr-hook verify --json >/tmp/verify.json && fail "$CASE: verify says healthy"
jq -e '.problems | any(.code == "foreign-entry" and (.detail | contains("generations/1 has no valid manifest")))' \
    /tmp/verify.json >/dev/null || { cat /tmp/verify.json; fail "$CASE: verify does not report the manifest"; }
case_end

case_begin "the manifest of the active generation is truncated"
truncate_to $L/generations/2/manifest.json 50; snap
# The damaged generation no longer proves it realizes the plan: a new one is built.
expect_ok use uutils
[ "$(readlink $L/active)" = generations/3 ] || fail "$CASE: active is $(readlink $L/active)"
[ "$(cat $L/generations/2/manifest.json | wc -c)" = 50 ] || fail "$CASE: the damaged manifest was rewritten"
intact
case_end

for how in "garbage" "of an unknown schema" "a symlink to /etc/passwd"; do
    case_begin "the intent is $how"
    case $how in
    garbage) echo 'garbage{' >$S/intent.json ;;
    "of an unknown schema")
        printf '{"schema":7,"op_id":"x","operation":"use","from_generation":1,"to_generation":2,"profile":"gnu","started":"2026-01-01T00:00:00Z"}\n' >$S/intent.json ;;
    *) ln -s /etc/passwd $S/intent.json ;;
    esac
    snap
    expect_error E_STATE_CORRUPT use gnu
    reason_has "/var/lib/oxidizr-arch/intent.json"
    expect_error E_STATE_CORRUPT verify
    unchanged; intact
    case_end
done

case_begin "foreign entries planted in the active generation and in generations/"
echo planted >$L/generations/2/bin/planted
ln -s /etc/victim $L/generations/9
in_nest oxidizr-hook verify --json >/tmp/verify.json && fail "$CASE: verify says healthy"
[ "$(jq '[.problems[] | select(.code == "foreign-entry")] | length' /tmp/verify.json)" = 2 ] ||
    { cat /tmp/verify.json; fail "$CASE: verify does not report both foreign entries"; }
expect_ok use gnu
expect_ok verify --repair
grep -q "quarantined 2 foreign entries" /tmp/case.out || { cat /tmp/case.out; fail "$CASE: nothing quarantined"; }
expect_ok verify
# Nothing was deleted: both are in the quarantine, the victim untouched.
[ "$(cat $L/quarantine/*.planted)" = planted ] || fail "$CASE: the planted file is not in the quarantine"
[ "$(readlink $L/quarantine/*.9)" = /etc/victim ] || fail "$CASE: the planted link is not in the quarantine"
[ "$(ls $M/etc/victim)" = file ] || fail "$CASE: the victim changed"
intact
case_end

case_begin "a foreign file in a store directory, a profile pointer replaced by a file"
echo planted >$L/store/gnu/coreutils-9.10-1/planted
rm $L/profiles/gnu; echo planted >$L/profiles/gnu; snap
# Refused before anything is built or flipped: the pointer is not ours.
expect_error E_POLICY use gnu
unchanged
expect_error_code 1 verify
grep -q "foreign-entry" /tmp/case.out || { cat /tmp/case.out; fail "$CASE: verify does not report the planted pointer"; }
expect_ok verify --repair
grep -q "quarantined 1 foreign pointers" /tmp/case.out || { cat /tmp/case.out; fail "$CASE: the pointer was not quarantined"; }
[ "$(cat $L/quarantine/*.gnu)" = planted ] || fail "$CASE: the planted pointer is not in the quarantine"
expect_ok use gnu
[ "$(readlink $L/profiles/gnu)" = "../$(readlink $L/active)" ] || fail "$CASE: profiles/gnu is not our pointer again"
[ "$(cat $L/store/gnu/coreutils-9.10-1/planted)" = planted ] || fail "$CASE: the file in the store was touched"
intact
case_end

for what in directory fifo symlink; do
    case_begin "our link /usr/bin/cat replaced by a $what"
    rm $M/usr/bin/cat
    case $what in
    directory) mkdir $M/usr/bin/cat ;;
    fifo) mkfifo $M/usr/bin/cat ;;
    symlink) ln -s /usr/bin/busybox $M/usr/bin/cat ;;
    esac
    snap
    expect_error E_OWNERSHIP use gnu
    reason_has "/usr/bin/cat is a"
    unchanged; intact cat
    in_nest oxidizr-hook verify --json >/tmp/verify.json && fail "$CASE: verify says healthy"
    jq -e '.problems | any(.code == "link-foreign")' /tmp/verify.json >/dev/null ||
        { cat /tmp/verify.json; fail "$CASE: verify does not report link-foreign"; }
    case_end
done

hostile_done hostile-state
