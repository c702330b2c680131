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
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, ErrorId, Result};
use crate::process::{self, Failure, Input};

/// pacman's default package cache (`CacheDir` when pacman.conf sets none).
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/pacman/pkg/";

/// The compression suffixes makepkg's `PKGEXT` may end in (after `.pkg.tar`).
const COMPRESSIONS: [&str; 10] = ["", ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lz", ".lrz", ".lzo", ".Z"];

/// Where pacman installs `pacman-conf`, inside the root.
pub const PACMAN_CONF_BIN: &str = "usr/bin/pacman-conf";

/// pacman's configuration file inside the root when `--config` names none.
pub const DEFAULT_CONFIG: &str = "/etc/pacman.conf";

/// How long `pacman-conf` may take.
const PACMAN_CONF_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one `bsdtar` extraction may take (we hold the lock meanwhile).
const EXTRACT_TIMEOUT: Duration = Duration::from_secs(60);

/// The pacman configuration values oxidizr-arch uses, as pacman reads them
/// (every `Include` followed, defaults filled in). Paths are as seen
/// inside the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacmanConf {
    /// Every `CacheDir`, in pacman's order.
    pub cache_dirs: Vec<String>,
    /// `DBPath`.
    pub db_path: String,
    /// Every `HookDir`, in pacman's order.
    pub hook_dirs: Vec<String>,
    /// `RootDir`.
    pub root_dir: String,
    /// Who read the file.
    pub source: ConfSource,
}

/// Who read pacman's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfSource {
    /// `pacman-conf` of the root (the authority: it follows `Include`).
    PacmanConf,
    /// The root has no `pacman-conf`: the file was read by hand
    /// ([`parse_conf`]), `Include` not followed. The text says so in one line.
    HandParsed(String),
}

/// pacman's configuration for the installation at `root`: `config` (a path
/// inside the root, default [`DEFAULT_CONFIG`]) read by the root's own
/// `pacman-conf` (`ROOT/usr/bin/pacman-conf`; for a root other than `/` it
/// runs chrooted into the root with the host's `chroot`, as pacman runs its
/// hooks: pacman-conf 7.1's `--sysroot` and `--rootdir` resolve explicit
/// paths and `Include`s on the host). Run as a bounded child
/// ([`crate::process`]).
///
/// Without a `pacman-conf` in the root, the file is read by [`parse_conf`]
/// (no `Include` followed), a missing file giving pacman's defaults, and
/// [`PacmanConf::source`] says so (also logged). A `pacman-conf` that fails
/// (a file pacman cannot parse, a `CacheDir` that does not exist) is
/// `E_CONFIG` with its complaint: pacman itself would refuse that file.
pub fn read_conf(root: &Path, config: Option<&Path>) -> Result<PacmanConf> {
    let config = config.unwrap_or(Path::new(DEFAULT_CONFIG));
    let bin = root.join(PACMAN_CONF_BIN);
    if bin.symlink_metadata().is_err() {
        let host = root.join(config.strip_prefix("/").unwrap_or(config));
        let text = match std::fs::read(&host) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(ErrorId::Config, format!("cannot read {}", host.display()), e)),
        };
        let why = format!(
            "{} is not installed: read {} by hand, Include directives not followed",
            bin.display(),
            host.display()
        );
        // A log line (journal, and stderr: pacman.log when a hook runs us).
        tracing::warn!("{why}");
        eprintln!("oxidizr-hook: warning: {why}");
        let mut conf = parse_conf(&text);
        conf.source = ConfSource::HandParsed(why);
        return Ok(conf);
    }
    let mut cmd = if crate::process::is_host_root(root) {
        Command::new(&bin)
    } else {
        let chroot = crate::process::host_chroot().ok_or_else(|| {
            Error::new(
                ErrorId::Config,
                format!("no chroot binary on the host to run pacman-conf in {}", root.display()),
            )
        })?;
        let mut c = Command::new(chroot);
        c.arg("--").arg(root).arg(Path::new("/").join(PACMAN_CONF_BIN));
        c
    };
    cmd.arg("--verbose")
        .arg("--config")
        .arg(config)
        .args(["CacheDir", "DBPath", "HookDir", "RootDir"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir("/");
    let shown = format!("pacman-conf --config {} (root {})", config.display(), root.display());
    let out = process::run(&mut cmd, Input::Null, PACMAN_CONF_TIMEOUT)
        .map_err(|f| Error::new(ErrorId::Config, format!("cannot run {shown}: {}", f.describe(PACMAN_CONF_TIMEOUT))))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).take(2).collect();
        return Err(Error::new(
            ErrorId::Config,
            format!("{shown} failed ({}): {}", process::status_text(out.status), one_line(&why.join(" | "))),
        ));
    }
    parse_pacman_conf_output(&String::from_utf8_lossy(&out.stdout))
}

/// Reads `pacman-conf --verbose` output ("Key = value" lines).
fn parse_pacman_conf_output(text: &str) -> Result<PacmanConf> {
    let mut conf = PacmanConf {
        cache_dirs: Vec::new(),
        db_path: String::new(),
        hook_dirs: Vec::new(),
        root_dir: String::new(),
        source: ConfSource::PacmanConf,
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once(" = ") else { continue };
        let value = value.to_string();
        match key {
            "CacheDir" => conf.cache_dirs.push(value),
            "HookDir" => conf.hook_dirs.push(value),
            "DBPath" => conf.db_path = value,
            "RootDir" => conf.root_dir = value,
            _ => {}
        }
    }
    if conf.cache_dirs.is_empty() || conf.db_path.is_empty() || conf.root_dir.is_empty() {
        return Err(Error::new(
            ErrorId::Config,
            format!("pacman-conf printed no CacheDir, DBPath or RootDir: {}", one_line(text)),
        ));
    }
    Ok(conf)
}

/// The fallback when the root has no `pacman-conf`: the values of a
/// pacman.conf text, read the way pacman reads them, defaults filled in.
/// Only the `[options]` section counts, a line whose first non-blank
/// character is `#` is a comment (pacman-conf 7.1 keeps a `#` after a
/// value as part of it), every `CacheDir`/`HookDir` line adds one
/// directory (the whole value: it is not split at spaces), the last
/// `DBPath`/`RootDir` wins.
/// `Include` directives are not followed. [`PacmanConf::source`] is
/// `HandParsed` with an empty text (the caller says why).
pub fn parse_conf(conf: &str) -> PacmanConf {
    let mut out = PacmanConf {
        cache_dirs: Vec::new(),
        db_path: String::new(),
        hook_dirs: Vec::new(),
        root_dir: String::new(),
        source: ConfSource::HandParsed(String::new()),
    };
    let mut in_options = false;
    for line in conf.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
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
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "CacheDir" => out.cache_dirs.push(value),
            "HookDir" => out.hook_dirs.push(value),
            "DBPath" => out.db_path = value,
            "RootDir" => out.root_dir = value,
            _ => {}
        }
    }
    if out.cache_dirs.is_empty() {
        out.cache_dirs.push(DEFAULT_CACHE_DIR.to_string());
    }
    if out.hook_dirs.is_empty() {
        out.hook_dirs.push("/etc/pacman.d/hooks/".to_string());
    }
    if out.db_path.is_empty() {
        out.db_path = "/var/lib/pacman/".to_string();
    }
    if out.root_dir.is_empty() {
        out.root_dir = "/".to_string();
    }
    out
}

/// The package cache directories of the installation at `root`, as paths
/// on this host: the `CacheDir`s of its pacman configuration
/// ([`read_conf`]; `config` inside the root, default [`DEFAULT_CONFIG`]),
/// each taken inside `root`. Relative values are ignored, as pacman
/// ignores them. Duplicates are dropped.
pub fn cache_dirs_of(root: &Path, config: Option<&Path>) -> Result<Vec<PathBuf>> {
    let conf = read_conf(root, config)?;
    let mut out: Vec<PathBuf> = Vec::new();
    for d in conf.cache_dirs.iter().filter(|d| d.starts_with('/')) {
        let inside = root.join(d.trim_matches('/'));
        if !out.contains(&inside) {
            out.push(inside);
        }
    }
    if out.is_empty() {
        out.push(root.join(DEFAULT_CACHE_DIR.trim_matches('/')));
    }
    Ok(out)
}

/// `s` on one line, at most 300 characters.
fn one_line(s: &str) -> String {
    let flat = s.trim().replace(['\r', '\n'], " | ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
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
/// last component, and refused unless it is a regular file), as a bounded
/// child ([`crate::process::run_streaming`]: its own process group, at
/// most 60 s, stderr drained while the sink reads stdout, so a bsdtar that
/// complains a lot cannot block the stream while we hold the lock).
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
    let mut cmd = Command::new(bsdtar);
    cmd.args(["-x", "-q", "-O", "-f", "-"]).arg(member_pattern(member)).env("LC_ALL", "C").current_dir("/");
    let what = format!("cannot extract {member} from {}", pkg.display());
    let run = process::run_streaming(&mut cmd, Input::File(file), EXTRACT_TIMEOUT, sink).map_err(|f| match f {
        Failure::Spawn(e) => Error::io(ErrorId::Io, format!("cannot run {}", bsdtar.display()), e),
        other => Error::new(ErrorId::BackupMissing, format!("{what}: bsdtar {}", other.describe(EXTRACT_TIMEOUT))),
    })?;
    let status = run.outcome.status;
    // bsdtar's own failure explains a short stream better than the sink
    // can, unless the sink gave up before the end: then bsdtar only
    // complains about the pipe the sink closed, and the sink's reason is
    // the real one.
    if status.success() || (!run.eof && run.value.is_err()) {
        return run.value;
    }
    let complaint = String::from_utf8_lossy(&run.outcome.stderr);
    let first = complaint.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    Err(Error::new(ErrorId::BackupMissing, format!("{what}: bsdtar {status}: {}", one_line(first))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_parser_reads_options_only_and_fills_in_defaults() {
        let conf = "\
# comment CacheDir = /nope
[options]
RootDir = /
DBPath = /first
    # the last DBPath wins
DBPath=/srv/db/
CacheDir = /var/cache/pacman/pkg/
CacheDir=/srv/a b # not a comment
  CacheDir =   /srv/c
CacheDir =
HookDir = /etc/h/
#CacheDir = /commented
Include = /etc/pacman.d/not-followed.conf
[core]
CacheDir = /not/options
Include = /etc/pacman.d/mirrorlist
";
        let got = parse_conf(conf);
        assert_eq!(got.cache_dirs, ["/var/cache/pacman/pkg/", "/srv/a b # not a comment", "/srv/c"]);
        assert_eq!(got.hook_dirs, ["/etc/h/"]);
        assert_eq!((got.db_path.as_str(), got.root_dir.as_str()), ("/srv/db/", "/"));
        let defaults = parse_conf("[options]\nArchitecture = auto\n");
        assert_eq!(defaults.cache_dirs, [DEFAULT_CACHE_DIR]);
        assert_eq!(defaults.hook_dirs, ["/etc/pacman.d/hooks/"]);
        assert_eq!((defaults.db_path.as_str(), defaults.root_dir.as_str()), ("/var/lib/pacman/", "/"));
        assert_eq!(parse_conf("CacheDir = /before/any/section\n").cache_dirs, [DEFAULT_CACHE_DIR]);
    }

    #[test]
    fn without_pacman_conf_the_file_is_hand_parsed_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let dirs = cache_dirs_of(root.path(), None).unwrap();
        assert_eq!(dirs, [root.path().join("var/cache/pacman/pkg")]);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/pacman.conf"),
            "[options]\nCacheDir = relative/ignored\nCacheDir = /srv/pkg/\nCacheDir = /srv/pkg\n",
        )
        .unwrap();
        assert_eq!(cache_dirs_of(root.path(), None).unwrap(), [root.path().join("srv/pkg")]);
        let conf = read_conf(root.path(), None).unwrap();
        match &conf.source {
            ConfSource::HandParsed(why) => {
                assert!(why.contains("pacman-conf is not installed") && why.contains("Include"), "{why}")
            }
            other => panic!("expected the fallback, got {other:?}"),
        }
        std::fs::write(root.path().join("etc/other.conf"), "[options]\nCacheDir = /srv/other\n").unwrap();
        let other = cache_dirs_of(root.path(), Some(Path::new("/etc/other.conf"))).unwrap();
        assert_eq!(other, [root.path().join("srv/other")]);
        std::fs::write(root.path().join("etc/pacman.conf"), "[options]\nCacheDir = relative\n").unwrap();
        assert_eq!(cache_dirs_of(root.path(), None).unwrap(), [root.path().join("var/cache/pacman/pkg")]);
    }

    /// The testbed's real pacman-conf (pacman 7.1) at root `/` follows
    /// `Include`, and refuses what pacman refuses.
    #[cfg(feature = "testbed")]
    #[test]
    fn pacman_conf_follows_include_and_its_refusal_is_e_config() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let included = dir.path().join("cache.conf");
        std::fs::write(&included, format!("[options]\nCacheDir = {}/\n", cache.display())).unwrap();
        let conf = dir.path().join("pacman.conf");
        std::fs::write(&conf, format!("[options]\nArchitecture = auto\nInclude = {}\n", included.display())).unwrap();
        let got = read_conf(Path::new("/"), Some(&conf)).unwrap();
        assert_eq!(got.source, ConfSource::PacmanConf);
        // pacman-conf 7.1 prints the resolved path (no trailing slash).
        assert_eq!(got.cache_dirs, [cache.display().to_string()]);
        assert_eq!((got.db_path.as_str(), got.root_dir.as_str()), ("/var/lib/pacman/", "/"));
        assert_eq!(cache_dirs_of(Path::new("/"), Some(&conf)).unwrap(), [cache]);
        std::fs::write(&included, "[options]\nCacheDir = /nonexistent/oxidizr-test/\n").unwrap();
        let e = read_conf(Path::new("/"), Some(&conf)).unwrap_err();
        assert_eq!(e.id, ErrorId::Config);
        assert!(
            e.reason.contains("failed to resolve path") && e.reason.contains("pacman-conf --config"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn pacman_conf_output_is_read_by_key() {
        let out = "CacheDir = /var/cache/pacman/pkg/\nCacheDir = /srv/a b/\nDBPath = /var/lib/pacman/\n\
                   HookDir = /etc/pacman.d/hooks/\nRootDir = /\n";
        let conf = parse_pacman_conf_output(out).unwrap();
        assert_eq!(conf.cache_dirs, ["/var/cache/pacman/pkg/", "/srv/a b/"]);
        assert_eq!(conf.hook_dirs, ["/etc/pacman.d/hooks/"]);
        assert_eq!(
            (conf.db_path.as_str(), conf.root_dir.as_str(), &conf.source),
            ("/var/lib/pacman/", "/", &ConfSource::PacmanConf)
        );
        assert_eq!(parse_pacman_conf_output("").unwrap_err().id, ErrorId::Config);
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
