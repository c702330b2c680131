#!/usr/bin/env bash
# The main job in the testbed, narrated: an Arch-like root with GNU
# coreutils/findutils and the uutils packages, oxidizr-arch built with real
# makepkg from this working tree and installed with pacman, the switch to
# uutils, then a coreutils upgrade through the pacman hooks.
. /src/tests/e2e/common.bash
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "testbed: $(tr '\n' ';' </etc/oxidizr-testbed-versions)"
say "pacman -U coreutils 9.10-1, findutils 4.11.0-1 (GNU), uutils-coreutils 0.12.0-1, uutils-findutils 0.10.0-1"
install_all
pacman -Q coreutils findutils uutils-coreutils uutils-findutils

say "makepkg: the oxidizr-arch package from this working tree (cached after the first build)"
pkg=$(bash /src/test-orch/build-self-pkg)
ls -la "$pkg"
# The testbed is Debian underneath: a package that provides glibc, gcc-libs,
# pacman and libalpm.so to pacmans dependency check.
pacman -U --noconfirm "$(/src/test-orch/mkpkg-provides "$PKGS")" >/dev/null
pacman -U --noconfirm "$pkg" 2>&1 | grep -E "installing|oxidizr|Running" || true
OXIDIZR=/usr/bin/oxidizr-hook

say "oxidizr-hook status (installed, not enabled: nothing changed yet)"
"$OXIDIZR" status | tail -4
/usr/bin/ls --version | head -1

say "sudo oxidizr-hook use uutils --dry-run | head"
"$OXIDIZR" use uutils --dry-run | head -6

say "sudo oxidizr-hook use uutils (no busybox here, like Arch's base: the rescue check runs GNU's own tools)"
command -v busybox >/dev/null && echo "busybox: $(command -v busybox)" || echo "busybox: not installed"
"$OXIDIZR" use uutils
grep '"stage":"preflight"' /var/log/oxidizr-arch/facts.jsonl | tail -1 | jq -r .decision
ls -l /usr/bin/ls /usr/lib/oxidizr-arch/active
/usr/bin/ls --version | head -1

say "pacman -U coreutils 9.11-1: pacman writes GNU files over our links; the post hook puts the choice back"
pacman_U "$(mkpkg coreutils 9.11-1)" 2>&1 | grep -E "upgrading|Running|oxidizr|Keeping"
ls -l /usr/bin/ls
/usr/bin/ls --version | head -1
grep oxidizr-arch /var/log/pacman.log | tail -2

say "profiles/gnu follows the installed GNU (canary's escape runs coreutils 9.11-1)"
readlink -f /usr/lib/oxidizr-arch/profiles/gnu/bin/ls
"$OXIDIZR" canary -- ls --version 2>/dev/null | head -1

say "oxidizr-hook status"
"$OXIDIZR" status | tail -5
say "oxidizr-hook generations"
"$OXIDIZR" generations
say "oxidizr-hook verify"
"$OXIDIZR" verify
say "the last facts (/var/log/oxidizr-arch/facts.jsonl)"
tail -3 /var/log/oxidizr-arch/facts.jsonl | jq -c '{operation, stage, decision, phase_us}'
