#!/usr/bin/env bash
# The Arch-like packages installed with real pacman at / of a scenario root:
# `status --json` lists exactly the applets `pacman -Ql` reports.
. /src/tests/e2e/common.bash

step "install coreutils, findutils, uutils-coreutils, uutils-findutils with pacman -U"
pacman_U "$(mkpkg coreutils 9.10-1)" "$(mkpkg findutils 4.11.0-1)" \
         "$(mkpkg uutils-coreutils 0.12.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null

step "status --json against / (pacman's default root and dbpath)"
"$OXIDIZR" status --json >/tmp/status.json
for fam in coreutils findutils; do
    jq -r --arg f "$fam" '.families[] | select(.name == $f) | .applets[].name' /tmp/status.json \
        | LC_ALL=C sort >/tmp/ours
    ql_bin "$fam" >/tmp/pacman
    diff -u /tmp/pacman /tmp/ours || fail "$fam: status applets differ from pacman -Ql"
    echo "$fam: $(wc -l </tmp/ours) applets, equal to pacman -Ql"
done

step "counterparts are exactly the uu-<applet> files of the uutils packages"
jq -r '.families[] | .applets[] | select(.uutils != null) | .name' /tmp/status.json | LC_ALL=C sort >/tmp/ours
{ ql_bin uutils-coreutils; ql_bin uutils-findutils; } | sed -n 's/^uu-//p' | LC_ALL=C sort -u >/tmp/uu
{ ql_bin coreutils; ql_bin findutils; } | LC_ALL=C sort >/tmp/gnu
LC_ALL=C comm -12 /tmp/gnu /tmp/uu >/tmp/expected
diff -u /tmp/expected /tmp/ours || fail "counterparts differ"
echo "$(wc -l </tmp/ours) applets have a uutils counterpart"

step "the text form names the packages"
"$OXIDIZR" status | tee /tmp/status.txt | head -3
grep -q '^==> coreutils: coreutils 9.10-1$' /tmp/status.txt || fail "text status lacks the coreutils line"
