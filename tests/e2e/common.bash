# Sourced by every end-to-end scenario. Runs as root at / of a fresh
# scenario root (test-orch/run): the real pacman operates on this root.
set -euo pipefail
OXIDIZR=${OXIDIZR:-/artifacts/bin/oxidizr-hook}
PKGS=$(mktemp -d /tmp/pkgs.XXXXXX)

step() { printf '==> %s\n' "$*"; }

# The configuration the scenarios written before the compatibility policies
# (issue 14) assume: every applet with a uutils counterpart switches (policy
# all, the behaviour they assert) and no differential case runs (a full run
# costs seconds per fresh root; the compat-* scenarios pay it, with the
# defaults: they set OXIDIZR_E2E_DEFAULT_CONFIG=1 before sourcing this file).
# write_config [LINE...]: that configuration plus LINEs.
# Only bash builtins once the directory exists (a scenario may have broken
# every coreutils command when it calls this).
write_config() {
    [ -d /etc/oxidizr-arch ] || mkdir -p /etc/oxidizr-arch
    printf '%s\n' 'policy = "all"' 'compat_checks = false' "$@" >/etc/oxidizr-arch/config.toml
}
[ "${OXIDIZR_E2E_DEFAULT_CONFIG:-}" = 1 ] || write_config
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# mkpkg KIND VERSION [VARIANT]: prints the built package's path.
mkpkg() { /src/test-orch/mkpkg "$1" "$2" "$PKGS" ${3:+"$3"}; }

# Install package files over what dpkg put in /usr/bin: afterwards pacman owns them.
pacman_U() { pacman -U --noconfirm --overwrite '*' "$@"; }

# The commands a package owns directly under /usr/bin, sorted.
ql_bin() { pacman -Qlq "$1" | sed -n 's|^/usr/bin/\([^/][^/]*\)$|\1|p' | LC_ALL=C sort; }

# install_all: the four Arch-like packages at / of the scenario root.
install_all() {
    pacman_U "$(mkpkg coreutils 9.10-1)" "$(mkpkg findutils 4.11.0-1)" \
             "$(mkpkg uutils-coreutils 0.12.0-1)" "$(mkpkg uutils-findutils 0.10.0-1)" >/dev/null
}

# managed_applets: every applet of coreutils and findutils (pacman -Ql).
managed_applets() { { ql_bin coreutils; ql_bin findutils; } | LC_ALL=C sort; }

# expect_exit CODE CMD...: runs CMD, fails unless it exits CODE.
expect_exit() {
    local want=$1; shift
    local got=0
    "$@" || got=$?
    [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}

# inode_table: "applet inode" for every managed applet (following nothing).
inode_table() { managed_applets | while IFS= read -r a; do printf '%s %s\n' "$a" "$(stat -c %i "/usr/bin/$a")"; done; }

# install_oxidizr: oxidizr-arch as a real pacman package (binary + hooks).
install_oxidizr() {
    pacman -U --noconfirm "$(mkpkg oxidizr-arch 0.1.0-1)" >/tmp/pacman-install-oxidizr.log 2>&1 \
        || { cat /tmp/pacman-install-oxidizr.log; fail "cannot install oxidizr-arch"; }
    OXIDIZR=/usr/bin/oxidizr-hook
}

# every_applet_resolves: fails naming the first managed applet that does not
# resolve to an executable.
every_applet_resolves() {
    local a
    while IFS= read -r a; do
        [ -x "/usr/bin/$a" ] || fail "/usr/bin/$a does not resolve to an executable"
    done < <(managed_applets)
}

# our_log_lines: the lines our hooks wrote into pacman.log.
our_log_lines() { grep -E '\[ALPM-SCRIPTLET\]|oxidizr' /var/log/pacman.log || true; }
