#!/bin/bash
# Testbed stand-in for what Arch's libmakepkg-dropins does at package time
# (alpm-sonamev1): a depends entry that is a bare library name ending in
# .so (e.g. libalpm.so) becomes <name>=<soname version>-<ELF bits>
# (libalpm.so=16-64) when an executable of the package links that library.
# Debian's makepkg 7.1 has no such drop-in; test-orch/build-self-pkg copies
# this file into the throwaway scenario root's /usr/share/makepkg/autodep/
# so the testbed package carries the same versioned dependency as Arch's.

[[ -n "$LIBMAKEPKG_AUTODEP_SONAMEV1_SH" ]] && return
LIBMAKEPKG_AUTODEP_SONAMEV1_SH=1

autodep_functions+=('sonamev1_depends')

sonamev1_depends() {
	local i dep f needed bits ver
	for i in "${!depends[@]}"; do
		dep=${depends[i]}
		[[ $dep == *.so ]] || continue
		ver=
		while IFS= read -rd '' f; do
			needed=$(LC_ALL=C readelf -d "$f" 2>/dev/null \
				| sed -nr "s/.*Shared library: \[${dep//./\\.}\.([^]]+)\].*/\1/p" | head -n1)
			[[ -n $needed ]] || continue
			bits=$(LC_ALL=C readelf -h "$f" | sed -nr 's/.*Class:[[:space:]]*ELF([0-9]+).*/\1/p')
			ver="$needed-$bits"
			break
		done < <(find "$pkgdir" -type f -perm -u+x -print0)
		[[ -n $ver ]] && depends[i]="$dep=$ver"
	done
	return 0
}
