//! pkgcache: find a package file in pacman's package cache and extract one
//! member from it. Used by `verify --repair` to refetch a damaged stored GNU
//! binary without reinstalling its package.
//!
//! Nothing here writes to the filesystem: the member's bytes are streamed
//! to a caller-supplied sink (the safety kernel decides what to do with
//! them). Nothing here is trusted either: the package file is only a
//! candidate source, and the caller checks the bytes against the sha256 it
//! recorded when it harvested the file.
//!
//! Extraction runs the host's `bsdtar` (libarchive, which pacman itself
//! links and Arch's `pacman` package depends on) rather than an in-process
//! tar + decompressor: it reads every compression pacman accepts (zstd, xz,
//! gzip, bzip2, lz4, lzip, lrzip, lzop, compress, none) with the same
//! library pacman extracts packages with, it adds no code to the hook binary
//! that runs inside every transaction, and a damaged or hostile archive is
//! parsed in another process.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, ErrorId, Result};

/// pacman's default package cache (`CacheDir` when pacman.conf sets none).
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/pacman/pkg/";

/// The compression suffixes makepkg's `PKGEXT` may end in (after `.pkg.tar`).
const COMPRESSIONS: [&str; 10] = ["", ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lz", ".lrz", ".lzo", ".Z"];

/// The `CacheDir` values of a pacman.conf text, in the order pacman reads
/// them: only the `[options]` section counts, `#` starts a comment, one
/// line may hold several whitespace-separated directories, and every line
/// adds to the list. `Include` directives are not followed. Empty when the
/// text sets no `CacheDir` (then pacman uses [`DEFAULT_CACHE_DIR`]).
pub fn parse_cache_dirs(conf: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut in_options = false;
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_options = section.trim() == "options";
            continue;
        }
        if !in_options {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        if key.trim() == "CacheDir" {
            dirs.extend(value.split_whitespace().map(str::to_string));
        }
    }
    dirs
}

/// The package cache directories of the installation at `root`, as paths
/// on this host: the `CacheDir`s of `ROOT/etc/pacman.conf` (or
/// [`DEFAULT_CACHE_DIR`] when it names none or does not exist), each taken
/// inside `root`. Relative `CacheDir` values are ignored, as pacman ignores
/// them. Duplicates are dropped. A pacman.conf that exists but cannot be
/// read is `E_IO`.
pub fn cache_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let conf_path = root.join("etc/pacman.conf");
    let mut dirs = match std::fs::read(&conf_path) {
        Ok(bytes) => parse_cache_dirs(&String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(ErrorId::Io, format!("cannot read {}", conf_path.display()), e)),
    };
    dirs.retain(|d| d.starts_with('/'));
    if dirs.is_empty() {
        dirs.push(DEFAULT_CACHE_DIR.to_string());
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for d in dirs {
        let inside = root.join(d.trim_matches('/'));
        if !out.contains(&inside) {
            out.push(inside);
        }
    }
    Ok(out)
}

/// When `file_name` is the package file of exactly `name` at `version`
/// (`NAME-VERSION-ARCH.pkg.tar[.EXT]`, EXT one of makepkg's compressions;
/// never a `.sig` or a partial download), its architecture (`x86_64`,
/// `any`, ...); otherwise `None`. `version` is pacman's full version
/// (`[epoch:]pkgver-pkgrel`), kept verbatim in cache file names.
pub fn package_arch<'a>(file_name: &'a str, name: &str, version: &str) -> Option<&'a str> {
    let rest = file_name.strip_prefix(name)?.strip_prefix('-')?.strip_prefix(version)?.strip_prefix('-')?;
    let (arch, ext) = rest.split_once(".pkg.tar")?;
    let arch_ok = !arch.is_empty() && arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (arch_ok && COMPRESSIONS.contains(&ext)).then_some(arch)
}

/// Every package file of `name` at `version` in `dirs`, best candidate
/// first: this machine's architecture, then `any`, then any other, in the
/// order of `dirs`, then by file name. Only regular files (not followed
/// through a symlink at the last component) are listed. A directory that
/// does not exist or cannot be read contributes nothing.
pub fn find(dirs: &[PathBuf], name: &str, version: &str) -> Vec<PathBuf> {
    let native = std::env::consts::ARCH;
    let mut found: Vec<(u8, usize, String, PathBuf)> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let Ok(file_name) = entry.file_name().into_string() else { continue };
            let Some(arch) = package_arch(&file_name, name, version) else { continue };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let rank = match arch {
                a if a == native => 0,
                "any" => 1,
                _ => 2,
            };
            found.push((rank, i, file_name.clone(), entry.path()));
        }
    }
    found.sort();
    found.into_iter().map(|(.., p)| p).collect()
}

/// The `bsdtar` to extract with: the first on this process's `PATH`, else
/// in `/usr/bin` or `/bin` of the host (never inside `--root`).
/// `E_IO` when there is none.
pub fn bsdtar() -> Result<PathBuf> {
    which::which("bsdtar").or_else(|_| which::which_in("bsdtar", Some("/usr/bin:/bin"), "/")).map_err(|e| {
        Error::new(
            ErrorId::Io,
            format!("bsdtar (libarchive) is not installed or not on PATH ({e}): cannot read the package cache"),
        )
    })
}

/// `member` as a bsdtar pattern that matches exactly that path: libarchive
/// reads include arguments as wildcard patterns, so `*`, `?`, `[` and `\`
/// (a `[` applet exists) are escaped with a backslash.
pub fn member_pattern(member: &str) -> String {
    let mut out = String::with_capacity(member.len());
    for c in member.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Streams the content of `member` (e.g. `usr/bin/ls`) of the package file
/// `pkg` into `sink`, by running `bsdtar -x -q -O -f - PATTERN` with the
/// package on its stdin (opened here without following a symlink at its
/// last component, and refused unless it is a regular file).
///
/// The result is the sink's when bsdtar succeeds, or when the sink failed
/// before reading to the end (bsdtar then fails on the closed pipe). Any other bsdtar failure
/// (the member is not in the archive, the archive is damaged) is
/// `E_BACKUP_MISSING` with bsdtar's first line of complaint, and whatever
/// the sink returned is dropped (so it must clean up on drop). The sink may
/// see fewer bytes than the member holds if it stops reading.
pub fn extract_member<T>(
    bsdtar: &Path,
    pkg: &Path,
    member: &str,
    sink: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(pkg)
        .map_err(|e| Error::io(ErrorId::BackupMissing, format!("cannot open {}", pkg.display()), e))?;
    let md = file.metadata().map_err(|e| Error::io(ErrorId::Io, format!("cannot stat {}", pkg.display()), e))?;
    if !md.is_file() {
        return Err(Error::new(ErrorId::BackupMissing, format!("{} is not a regular file", pkg.display())));
    }
    let mut child = Command::new(bsdtar)
        .args(["-x", "-q", "-O", "-f", "-"])
        .arg(member_pattern(member))
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::from(file))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(ErrorId::Io, format!("cannot run {}", bsdtar.display()), e))?;
    let mut stdout = Tracked { inner: child.stdout.take().expect("piped stdout"), eof: false };
    let result = sink(&mut stdout);
    let sink_stopped_early = !stdout.eof;
    drop(stdout);
    let mut complaint = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut complaint);
    }
    let status =
        child.wait().map_err(|e| Error::io(ErrorId::Io, format!("cannot wait for {}", bsdtar.display()), e))?;
    // bsdtar's own failure explains a short stream better than the sink
    // can, unless the sink gave up before the end: then bsdtar only
    // complains about the pipe the sink closed, and the sink's reason is
    // the real one.
    if status.success() || (sink_stopped_early && result.is_err()) {
        return result;
    }
    let first = complaint.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    Err(Error::new(
        ErrorId::BackupMissing,
        format!("cannot extract {member} from {}: bsdtar {status}: {first}", pkg.display()),
    ))
}

/// A reader that remembers whether it reached the end of its stream.
struct Tracked<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.eof |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dirs_come_from_options_only() {
        let conf = "\
# comment CacheDir = /nope
[options]
RootDir = /
CacheDir = /var/cache/pacman/pkg/   # trailing comment
CacheDir=/srv/a /srv/b
  CacheDir =   /srv/c
#CacheDir = /commented
[core]
CacheDir = /not/options
Include = /etc/pacman.d/mirrorlist
";
        assert_eq!(parse_cache_dirs(conf), ["/var/cache/pacman/pkg/", "/srv/a", "/srv/b", "/srv/c"]);
        assert!(parse_cache_dirs("[options]\nArchitecture = auto\n").is_empty());
        assert!(parse_cache_dirs("CacheDir = /before/any/section\n").is_empty());
    }

    #[test]
    fn cache_dirs_are_inside_the_root_with_the_default() {
        let root = tempfile::tempdir().unwrap();
        let dirs = cache_dirs(root.path()).unwrap();
        assert_eq!(dirs, [root.path().join("var/cache/pacman/pkg")]);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/pacman.conf"),
            "[options]\nCacheDir = relative/ignored\nCacheDir = /srv/pkg/ /srv/pkg\n",
        )
        .unwrap();
        assert_eq!(cache_dirs(root.path()).unwrap(), [root.path().join("srv/pkg")]);
        std::fs::write(root.path().join("etc/pacman.conf"), "[options]\nCacheDir = relative\n").unwrap();
        assert_eq!(cache_dirs(root.path()).unwrap(), [root.path().join("var/cache/pacman/pkg")]);
    }

    #[test]
    fn package_file_names_match_exactly() {
        let (n, v) = ("coreutils", "9.10-1");
        assert_eq!(package_arch("coreutils-9.10-1-x86_64.pkg.tar.zst", n, v), Some("x86_64"));
        assert_eq!(package_arch("coreutils-9.10-1-any.pkg.tar.xz", n, v), Some("any"));
        assert_eq!(package_arch("coreutils-9.10-1-aarch64.pkg.tar", n, v), Some("aarch64"));
        assert_eq!(package_arch("coreutils-1:9.10-1-x86_64.pkg.tar.zst", n, "1:9.10-1"), Some("x86_64"));
        for other in [
            "coreutils-9.10-1-x86_64.pkg.tar.zst.sig",
            "coreutils-9.10-1-x86_64.pkg.tar.zst.part",
            "coreutils-9.10-10-x86_64.pkg.tar.zst",
            "coreutils-9.10-1.1-x86_64.pkg.tar.zst",
            "coreutils-9.1-1-x86_64.pkg.tar.zst",
            "coreutils-extra-9.10-1-x86_64.pkg.tar.zst",
            "xcoreutils-9.10-1-x86_64.pkg.tar.zst",
            "coreutils-9.10-1-x86-64.pkg.tar.zst",
            "coreutils-9.10-1-.pkg.tar.zst",
            "coreutils-9.10-1-x86_64.tar.zst",
            "coreutils-9.10-1-x86_64.pkg.tar.rar",
        ] {
            assert_eq!(package_arch(other, n, v), None, "{other}");
        }
        // A package whose name ends like another's version is not confused.
        assert_eq!(package_arch("foo-1-1-1-any.pkg.tar.zst", "foo", "1-1"), None);
        assert_eq!(package_arch("foo-1-1-1-any.pkg.tar.zst", "foo-1", "1-1"), Some("any"));
    }

    #[test]
    fn find_ranks_native_then_any_and_skips_non_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let native = std::env::consts::ARCH;
        std::fs::write(a.path().join("coreutils-9.10-1-any.pkg.tar.zst"), b"").unwrap();
        std::fs::write(a.path().join("coreutils-9.10-1-weird.pkg.tar.zst"), b"").unwrap();
        std::fs::write(b.path().join(format!("coreutils-9.10-1-{native}.pkg.tar.zst")), b"").unwrap();
        std::fs::write(b.path().join("coreutils-9.10-2-any.pkg.tar.zst"), b"").unwrap();
        std::fs::create_dir(a.path().join(format!("coreutils-9.10-1-{native}.pkg.tar.xz"))).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", a.path().join(format!("coreutils-9.10-1-{native}.pkg.tar"))).unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf(), a.path().join("missing")];
        let got = find(&dirs, "coreutils", "9.10-1");
        assert_eq!(
            got,
            [
                b.path().join(format!("coreutils-9.10-1-{native}.pkg.tar.zst")),
                a.path().join("coreutils-9.10-1-any.pkg.tar.zst"),
                a.path().join("coreutils-9.10-1-weird.pkg.tar.zst"),
            ]
        );
    }

    /// A zstd package holding `usr/bin/[`, `usr/bin/ls` and `usr/bin/lsx`,
    /// built with the testbed's bsdtar.
    #[cfg(feature = "testbed")]
    fn package(dir: &Path) -> PathBuf {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
        std::fs::write(tree.join("usr/bin/["), b"bracket").unwrap();
        std::fs::write(tree.join("usr/bin/ls"), b"ls bytes").unwrap();
        std::fs::write(tree.join("usr/bin/lsx"), b"not ls").unwrap();
        let pkg = dir.join("coreutils-9.10-1-x86_64.pkg.tar.zst");
        let ok = Command::new(bsdtar().unwrap())
            .arg("--zstd")
            .arg("-cf")
            .arg(&pkg)
            .arg("-C")
            .arg(&tree)
            .arg("usr")
            .status()
            .unwrap()
            .success();
        assert!(ok, "bsdtar could not build the test package");
        pkg
    }

    #[cfg(feature = "testbed")]
    fn read_all(r: &mut dyn Read) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|e| Error::io(ErrorId::Io, "read", e))?;
        Ok(v)
    }

    #[cfg(feature = "testbed")]
    #[test]
    fn extracts_exactly_one_member() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = package(dir.path());
        let tar = bsdtar().unwrap();
        assert_eq!(extract_member(&tar, &pkg, "usr/bin/ls", read_all).unwrap(), b"ls bytes");
        assert_eq!(extract_member(&tar, &pkg, "usr/bin/[", read_all).unwrap(), b"bracket");
        let e = extract_member(&tar, &pkg, "usr/bin/l*", read_all).unwrap_err();
        assert_eq!(e.id, ErrorId::BackupMissing);
        assert!(e.reason.contains("Not found in archive"), "{}", e.reason);
    }

    #[cfg(feature = "testbed")]
    #[test]
    fn a_sink_that_gives_up_keeps_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = package(dir.path());
        let give_up = |r: &mut dyn Read| -> Result<()> {
            let mut one = [0u8; 1];
            r.read_exact(&mut one).unwrap();
            Err(Error::new(ErrorId::Policy, "the sink's reason"))
        };
        let e = extract_member(&bsdtar().unwrap(), &pkg, "usr/bin/ls", give_up).unwrap_err();
        assert_eq!((e.id, e.reason.as_str()), (ErrorId::Policy, "the sink's reason"));
    }

    #[cfg(feature = "testbed")]
    #[test]
    fn only_regular_package_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = package(dir.path());
        let link = dir.path().join("link-x86_64.pkg.tar.zst");
        std::os::unix::fs::symlink(&pkg, &link).unwrap();
        let tar = bsdtar().unwrap();
        let e = extract_member(&tar, &link, "usr/bin/ls", read_all).unwrap_err();
        assert_eq!(e.id, ErrorId::BackupMissing);
        let e = extract_member(&tar, dir.path(), "usr/bin/ls", read_all).unwrap_err();
        assert!(e.reason.contains("not a regular file"), "{}", e.reason);
    }

    /// A fake bsdtar (a shell script) that says a lot on stderr: more
    /// than a pipe holds, before and after a member bigger than a pipe.
    fn chatty_bsdtar(dir: &Path, status: i32) -> PathBuf {
        let fake = dir.join("bsdtar");
        let body = format!(
            "#!/bin/sh\nhead -c 200000 /dev/zero | tr '\\0' w >&2\nhead -c 300000 /dev/zero\n\
             echo 'bsdtar: chatty to the end' >&2\nhead -c 100000 /dev/zero | tr '\\0' w >&2\nexit {status}\n"
        );
        std::fs::write(&fake, body).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        fake
    }

    /// Runs `extract_member` with a fake bsdtar on another thread; None
    /// when it has not returned within 30 s (a deadlock).
    fn extract_with(fake: PathBuf, pkg: PathBuf) -> Option<Result<usize>> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let count = |r: &mut dyn Read| -> Result<usize> {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map_err(|e| Error::io(ErrorId::Io, "read", e))?;
                Ok(v.len())
            };
            let _ = tx.send(extract_member(&fake, &pkg, "usr/bin/ls", count));
        });
        rx.recv_timeout(std::time::Duration::from_secs(30)).ok()
    }

    #[test]
    fn a_bsdtar_that_fills_its_stderr_pipe_cannot_deadlock_the_extraction() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("coreutils-9.10-1-x86_64.pkg.tar.zst");
        std::fs::write(&pkg, b"not read by the fake").unwrap();
        let got = extract_with(chatty_bsdtar(dir.path(), 0), pkg.clone())
            .expect("extract_member deadlocked: bsdtar blocked on a full stderr pipe while stdout was read");
        assert_eq!(got.unwrap(), 300000);
        let e = extract_with(chatty_bsdtar(dir.path(), 1), pkg).expect("deadlocked on a failing bsdtar").unwrap_err();
        assert_eq!(e.id, ErrorId::BackupMissing);
        assert!(e.reason.contains("bsdtar exit status: 1: wwww"), "{}", e.reason);
    }

    #[test]
    fn patterns_escape_wildcards() {
        assert_eq!(member_pattern("usr/bin/ls"), "usr/bin/ls");
        assert_eq!(member_pattern("usr/bin/["), "usr/bin/\\[");
        assert_eq!(member_pattern("usr/bin/a*?\\]"), "usr/bin/a\\*\\?\\\\\\]");
    }
}
