#!/usr/bin/env bash
# Builds the testbed's base root: Debian sid with pacman 7.1 / libalpm 16, a
# Rust toolchain, GNU coreutils+findutils, uutils (rust-coreutils,
# rust-findutils), makepkg+fakeroot and the filesystem tools the tests use.
# Like Arch's `base`, the root has no busybox: its binary is kept aside in
# /opt/oxidizr-testbed/busybox for `test-orch/mkpkg busybox`, so a scenario
# that wants it installs it with pacman, as the optdepend it is.
#
# The cache key of the base root is the sha256 of this file: change anything
# here and the next run rebuilds the base from nothing.
#
# Usage: base.sh DIR   (DIR must not exist; the caller renames it into place)
set -euo pipefail

dest=$1
mirror=${OXIDIZR_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What debootstrap installs in one go (shared/TESTBED.md): the build needs the
# four -dev packages because alpm-sys runs pkg-config on libalpm.pc.
include=pacman-package-manager,libalpm-dev,pkg-config,cargo,rustc,gcc,libc6-dev
include+=,rust-coreutils,rust-findutils,libarchive-tools,zstd
include+=,ca-certificates,libssl-dev,libarchive-dev,libcurl4-openssl-dev,libgpgme-dev

# Tools the tests use, installed with apt inside the root afterwards:
# xattrs, ACLs, file capabilities, chattr and the filesystems of the matrix.
# makepkg (Debian ships it apart from pacman-package-manager) builds the
# oxidizr-arch package itself from the working tree (test-orch/build-self-pkg);
# git lists the tree's files for that build's cache key and source tarball.
extra=(attr acl libcap2-bin e2fsprogs btrfs-progs xfsprogs fakeroot
       util-linux mount procps file hyperfine jq makepkg git)

echo "==> debootstrap sid into $dest (mirror $mirror)"
debootstrap --variant=minbase --include="$include" sid "$dest" "$mirror" \
    >"$dest.debootstrap.log" 2>&1 || {
    tail -40 "$dest.debootstrap.log" >&2
    echo "error: debootstrap of Debian sid failed (log: $dest.debootstrap.log)" >&2
    exit 1
}

# The mirror may lag the clock: an expired Release file must not break apt.
echo 'Acquire::Check-Valid-Until "false";' >"$dest/etc/apt/apt.conf.d/99oxidizr-testbed"
printf 'deb %s sid main\n' "$mirror" >"$dest/etc/apt/sources.list"

# The host's extra CA certificates (TLS to the crate registry) and DNS.
cp /usr/local/share/ca-certificates/*.crt "$dest/usr/local/share/ca-certificates/" 2>/dev/null || true
cp -L /etc/resolv.conf "$dest/etc/resolv.conf"

in_root() {
    unshare -m --propagation private -- bash -c '
        set -e
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs tmpfs "$root/tmp"
        exec chroot "$root" "$@"' _ "$dest" "$@"
}

echo "==> apt-get install ${extra[*]}"
in_root env DEBIAN_FRONTEND=noninteractive bash -c "
    apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends ${extra[*]} >/dev/null &&
    update-ca-certificates >/dev/null &&
    apt-get clean"

echo "==> pacman configuration for a repo-less Arch-like root"
cat >"$dest/etc/pacman.conf" <<'EOF'
# oxidizr-arch testbed: no sync repositories, local packages only.
[options]
Architecture = auto
SigLevel = Never
LocalFileSigLevel = Never
EOF
mkdir -p "$dest/usr/share/libalpm/hooks" "$dest/etc/pacman.d/hooks" \
         "$dest/var/lib/pacman" "$dest/var/cache/pacman/pkg" "$dest/var/log"

# Pristine copies of the GNU commands: test-orch/mkpkg builds packages from
# these, never from the live /usr/bin (where a test may have put links).
in_root bash -c 'set -e; mkdir -p /opt/oxidizr-testbed/gnu
    for p in coreutils findutils; do
        dpkg -L "$p" | grep -E "^(/usr)?/bin/[^/]+$" | sed "s|.*/||" | sort -u >"/opt/oxidizr-testbed/$p.list"
        while IFS= read -r c; do cp -a "/usr/bin/$c" "/opt/oxidizr-testbed/gnu/$c"; done <"/opt/oxidizr-testbed/$p.list"
    done'

# busybox, not installed (Arch's base has none): its static binary, unpacked
# from Debian's package, for test-orch/mkpkg busybox.
in_root bash -c 'set -e; cd /tmp; apt-get download -qq busybox-static
    dpkg-deb -x busybox-static_*.deb bb
    bin=$(find bb -path "*bin/busybox" -type f | head -1)
    [ "$(head -c 4 "$bin" | od -An -c | tr -d " ")" = "177ELF" ] || { echo "busybox-static: no ELF at */bin/busybox" >&2; exit 1; }
    install -m 0755 "$bin" /opt/oxidizr-testbed/busybox
    env -i /opt/oxidizr-testbed/busybox true; rm -rf bb busybox-static_*.deb'
if [ -e "$dest/usr/bin/busybox" ] || [ -e "$dest/bin/busybox" ]; then
    echo "error: the base root has a busybox; a stock Arch base has none" >&2; exit 1
fi

# makepkg refuses to run as root: packages are built by this user.
in_root useradd --create-home --uid 1500 builder

# Record what the base holds, for the closing line of every run.
in_root bash -c 'pacman --version | sed -n "s/.*\(Pacman v[^ ]*\).*\(libalpm v[^ ]*\).*/\1 \2/p";
    rustc --version; cargo --version;
    ls --version | head -1; find --version | head -1;
    dpkg-query -W -f="\${Package} \${Version}\n" rust-coreutils rust-findutils;
    /opt/oxidizr-testbed/busybox | head -1' >"$dest/etc/oxidizr-testbed-versions"
cat "$dest/etc/oxidizr-testbed-versions"
rm -f "$dest/etc/resolv.conf"
echo "==> base root ready"
