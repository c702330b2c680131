# Sourced by every end-to-end scenario. Runs as root at / of a fresh
# scenario root (test-orch/run): the real pacman operates on this root.
set -euo pipefail
OXIDIZR=${OXIDIZR:-/artifacts/bin/oxidizr-hook}
PKGS=$(mktemp -d /tmp/pkgs.XXXXXX)

step() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# mkpkg KIND VERSION [VARIANT]: prints the built package's path.
mkpkg() { /src/test-orch/mkpkg "$1" "$2" "$PKGS" ${3:+"$3"}; }

# Install package files over what dpkg put in /usr/bin: afterwards pacman owns them.
pacman_U() { pacman -U --noconfirm --overwrite '*' "$@"; }

# The commands a package owns directly under /usr/bin, sorted.
ql_bin() { pacman -Qlq "$1" | sed -n 's|^/usr/bin/\([^/][^/]*\)$|\1|p' | LC_ALL=C sort; }
