#!/usr/bin/env bash
# The oxidizr-arch package itself: built from the working tree by real
# makepkg (test-orch/build-self-pkg, cached by source hash), linted, installed
# with real `pacman -U` (its depends resolved for real), checked file by file;
# installing must change nothing in /usr/bin (the post hook says "not
# enabled"); the packaged binary reads the packaged config; `pacman -R`
# removes every file again and keeps an edited config as .pacsave.
# The package installs /etc/oxidizr-arch/config.toml itself: no test config.
OXIDIZR_E2E_DEFAULT_CONFIG=1
. /src/tests/e2e/common.bash
# Everything below uses the packaged /usr/bin/oxidizr-hook, not $OXIDIZR.
HOOK=/usr/bin/oxidizr-hook

step "build the package with makepkg (or take the cached build of this tree)"
pkg=$(/src/test-orch/build-self-pkg "$PKGS")
echo "$pkg ($(du -h "$pkg" | cut -f1))"

step ".SRCINFO is what makepkg --printsrcinfo says of the PKGBUILD"
d=$(mktemp -d)
cp /src/PKGBUILD "$d/"
chown -R builder: "$d"
runuser -u builder -- env -C "$d" makepkg --printsrcinfo >"$d/SRCINFO"
diff -u /src/.SRCINFO "$d/SRCINFO" ||
    fail ".SRCINFO is stale: regenerate it with 'makepkg --printsrcinfo > .SRCINFO' (docs/PACKAGING.md)"

step "package lint (namcap's rules, test-orch/pkglint)"
/src/test-orch/pkglint "$pkg" | tee /tmp/lint
grep -q ' W: ' /tmp/lint && fail "pkglint has warnings"

step "install GNU + uutils packages, then snapshot /usr/bin"
install_all
usrbin_table() { find /usr/bin -mindepth 1 -maxdepth 1 -printf '%f %i %y %l\n' | LC_ALL=C sort; }
usrbin_table >/tmp/usrbin.before
inode_table >/tmp/inodes.before

step "pacman -U oxidizr-arch: depends resolved against the root's libraries"
if pacman -U --noconfirm "$pkg" >/tmp/nodeps.log 2>&1; then
    fail "pacman -U succeeded without glibc/gcc-libs/pacman/libalpm.so providers: depends are not checked"
fi
grep -q "unable to satisfy dependency" /tmp/nodeps.log || { cat /tmp/nodeps.log; fail "unexpected pacman -U failure"; }
provides=$(/src/test-orch/mkpkg-provides "$PKGS")
pacman -U --noconfirm "$provides" >/dev/null
pacman -U --noconfirm "$pkg" 2>&1 | tee /tmp/install.log
pacman -Q oxidizr-arch
pacman -Qi oxidizr-arch | grep -E '^(Depends On|Backup Files|Licenses)' -A1

step "the post-transaction hook ran and said 'not enabled'"
grep -q "Keeping the chosen core commands (oxidizr-arch)" /tmp/install.log || fail "the post hook did not run"
grep -q "oxidizr-arch: not enabled" /tmp/install.log || fail "the post hook did not say 'not enabled'"
grep -q "not enabled" /var/log/pacman.log || fail "pacman.log lacks the hook's line"
grep "not enabled" /var/log/pacman.log | tail -1

step "installing changed nothing in /usr/bin"
usrbin_table >/tmp/usrbin.after
inode_table >/tmp/inodes.after
diff -u /tmp/usrbin.before /tmp/usrbin.after | grep -v '^ ' || true
# The only new /usr/bin entry is the package's own binary.
diff <(grep -v '^oxidizr-hook ' /tmp/usrbin.after) /tmp/usrbin.before >/dev/null ||
    fail "installing the package changed /usr/bin beyond adding oxidizr-hook"
diff -u /tmp/inodes.before /tmp/inodes.after || fail "managed applets' inodes changed"
[ ! -e /usr/lib/oxidizr-arch ] || fail "installing created /usr/lib/oxidizr-arch"
[ -z "$(find /usr/bin -lname '/usr/lib/oxidizr-arch/*')" ] || fail "links of ours in /usr/bin after install"
pacman -Qkk coreutils findutils >/tmp/qkk 2>&1 || { cat /tmp/qkk; fail "pacman -Qkk reports problems"; }

step "every file where the PKGBUILD puts it"
pacman -Qlq oxidizr-arch | grep -v '/$' | LC_ALL=C sort | tee /tmp/files
cat >/tmp/files.expected <<'EOF'
/etc/oxidizr-arch/config.toml
/usr/bin/oxidizr-hook
/usr/lib/systemd/catalog/oxidizr-arch.catalog
/usr/lib/systemd/system/oxidizr-boot-gate.service
/usr/lib/systemd/system/oxidizr-verify.service
/usr/lib/systemd/system/oxidizr-verify.timer
/usr/share/bash-completion/completions/oxidizr-hook
/usr/share/doc/oxidizr-arch/ARCHITECTURE.md
/usr/share/doc/oxidizr-arch/PACKAGING.md
/usr/share/doc/oxidizr-arch/README.md
/usr/share/fish/vendor_completions.d/oxidizr-hook.fish
/usr/share/libalpm/hooks/10-oxidizr-arch-pre-remove.hook
/usr/share/libalpm/hooks/10-oxidizr-arch-pre-upgrade.hook
/usr/share/libalpm/hooks/90-oxidizr-arch-post.hook
/usr/share/licenses/oxidizr-arch/LICENSE-APACHE
/usr/share/licenses/oxidizr-arch/LICENSE-MIT
/usr/share/man/man1/oxidizr-hook.1.gz
/usr/share/oxidizr-arch/compat/concerns.toml
/usr/share/zsh/site-functions/_oxidizr-hook
EOF
# docs/*.md and the corpus files grow with the docs and the corpus:
# compare the rest exactly, and those by name and content.
skip='^/usr/share/doc/|^/usr/share/oxidizr-arch/compat/cases/'
diff -u <(grep -Ev "$skip" /tmp/files.expected) <(grep -Ev "$skip" /tmp/files) ||
    fail "the package's file list is not the expected one"
for f in /src/data/compat/cases/*.toml /src/data/compat/concerns.toml; do
    rel=${f#/src/data/compat/}
    cmp "$f" "/usr/share/oxidizr-arch/compat/$rel" || fail "corpus file $rel is not installed as it is in data/"
done
[ "$(pacman -Qlq oxidizr-arch | grep -c '^/usr/share/oxidizr-arch/compat/cases/.*\.toml$')" = "$(ls /src/data/compat/cases/*.toml | wc -l)" ] ||
    fail "the package ships other corpus files than data/compat/cases/"
# (by name: the docs may be edited while this runs)
for f in /src/docs/*.md /src/README.md; do
    [ -s "/usr/share/doc/oxidizr-arch/$(basename "$f")" ] || fail "doc $(basename "$f") is not installed"
done
[ "$(stat -c '%a %U:%G' "$HOOK")" = "755 root:root" ] || fail "$HOOK mode/owner: $(stat -c '%a %U:%G' "$HOOK")"
for h in /src/hooks/*.hook; do cmp "$h" "/usr/share/libalpm/hooks/$(basename "$h")" || fail "hook $h differs"; done
for u in /src/systemd/*.service /src/systemd/*.timer; do
    cmp "$u" "/usr/lib/systemd/system/$(basename "$u")" || fail "unit $u differs"
done
cmp /src/systemd/oxidizr-arch.catalog /usr/lib/systemd/catalog/oxidizr-arch.catalog || fail "the journal catalog differs"
cmp /src/packaging/config.toml /etc/oxidizr-arch/config.toml || fail "config differs from packaging/config.toml"
cmp /src/LICENSE-MIT /usr/share/licenses/oxidizr-arch/LICENSE-MIT
cmp /src/LICENSE-APACHE /usr/share/licenses/oxidizr-arch/LICENSE-APACHE
pacman -Qkk oxidizr-arch

step "the man page: roff from the clap definition, with EXIT STATUS and FILES"
zcat /usr/share/man/man1/oxidizr-hook.1.gz >/tmp/page.1
title=$(grep -m1 -E '^\.(TH|SH)' /tmp/page.1)
echo "$title"
case $title in ".TH OXIDIZR-HOOK 1 "*) ;; *) fail "the first macro is not the .TH title" ;; esac
for s in NAME SYNOPSIS DESCRIPTION OPTIONS COMMANDS '"EXIT STATUS"' FILES '"SEE ALSO"'; do
    grep -qx "\.SH $s" /tmp/page.1 || fail "man page lacks section $s"
done
for id in E_USAGE E_POLICY E_CONFIG E_OWNERSHIP E_ALPM E_LOCKING E_ATOMIC_SWAP E_EXDEV \
          E_BACKUP_MISSING E_RESTORE_FAILED E_IO E_SMOKE E_STATE_CORRUPT; do
    grep -q "$id" /tmp/page.1 || fail "man page lacks $id"
done
for f in '/etc/oxidizr\\-arch/config.toml' '/var/lib/oxidizr\\-arch/state.json' '/var/log/oxidizr\\-arch/facts.jsonl'; do
    grep -q "$f" /tmp/page.1 || fail "man page lacks $f"
done
if command -v man >/dev/null; then
    MANWIDTH=80 man -l /tmp/page.1 | head -20
else
    echo "(man is not installed in the testbed: checked the roff source only)"
fi

step "completions load and complete"
bash -n /usr/share/bash-completion/completions/oxidizr-hook
got=$(bash -c '. /usr/share/bash-completion/completions/oxidizr-hook
    fn=$(complete -p oxidizr-hook | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
    COMP_WORDS=(oxidizr-hook ver); COMP_CWORD=1; COMP_LINE="oxidizr-hook ver"; COMP_POINT=${#COMP_LINE}
    "$fn" oxidizr-hook ver oxidizr-hook; printf "%s\n" "${COMPREPLY[@]}"')
[ "$got" = verify ] || fail "bash completion of 'oxidizr-hook ver' gave '$got'"
head -1 /usr/share/zsh/site-functions/_oxidizr-hook | grep -q '^#compdef oxidizr-hook' || fail "zsh completion header"
grep -q '^complete -c oxidizr-hook ' /usr/share/fish/vendor_completions.d/oxidizr-hook.fish || fail "fish completion"

step "the packaged binary reads the packaged config"
version=$("$HOOK" --version)
echo "$version"
[ "$version" = "oxidizr-hook $(sed -n 's/^pkgver=//p' /src/PKGBUILD)" ] || fail "--version is not the PKGBUILD's pkgver"
"$HOOK" status >/tmp/status || fail "status failed with the packaged config"
grep -q "profile: none" /tmp/status || { cat /tmp/status; fail "status does not say 'profile: none'"; }
expect_exit 0 "$HOOK" verify
R=$(mktemp -d)
mkdir -p "$R/etc/oxidizr-arch"
cp /etc/oxidizr-arch/config.toml "$R/etc/oxidizr-arch/"
"$HOOK" --root "$R" --dbpath /var/lib/pacman status >/dev/null || fail "status --root R (config in R) failed"
echo 'no_such_key = 1' >>"$R/etc/oxidizr-arch/config.toml"
expect_exit 11 "$HOOK" --root "$R" --dbpath /var/lib/pacman status
[ ! -e /usr/lib/oxidizr-arch ] || fail "status/verify created /usr/lib/oxidizr-arch"

step "pacman -R oxidizr-arch: everything goes, an edited config is kept as .pacsave"
echo '# edited by the admin' >>/etc/oxidizr-arch/config.toml
pacman -R --noconfirm oxidizr-arch 2>&1 | tee /tmp/remove.log
grep -q "Keeping core commands safe before removal (oxidizr-arch)" /tmp/remove.log || fail "the pre-remove hook did not run"
if pacman -Q oxidizr-arch >/dev/null 2>&1; then fail "oxidizr-arch is still installed"; fi
while IFS= read -r f; do
    [ ! -e "$f" ] || fail "$f remains after pacman -R"
done </tmp/files
[ -f /etc/oxidizr-arch/config.toml.pacsave ] || fail "the edited config was not kept as config.toml.pacsave"
grep -q 'edited by the admin' /etc/oxidizr-arch/config.toml.pacsave
usrbin_table >/tmp/usrbin.removed
diff -u /tmp/usrbin.before /tmp/usrbin.removed || fail "/usr/bin after removal differs from before install"
pacman -Qkk coreutils findutils >/tmp/qkk 2>&1 || { cat /tmp/qkk; fail "pacman -Qkk reports problems after removal"; }
left=$({ find /var/lib/oxidizr-arch /var/log/oxidizr-arch /usr/lib/oxidizr-arch 2>/dev/null || true; } | tr '\n' ' ')
[ -z "$left" ] || fail "installing and removing a never-used oxidizr-arch left files behind: $left"
step "ok"
