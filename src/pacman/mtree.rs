//! pacman's own record of the files it installed: the local database keeps,
//! for every installed package, the package's `.MTREE`
//! (`<dbpath>/local/<pkg>-<ver>/mtree`, gzip-compressed mtree text) with a
//! `sha256digest` per regular file. libalpm reads these files for
//! `pacman -Qkk` but does not expose the digests, so the few fields we need
//! are parsed here.
//!
//! Why a parser of our own and not Arch's `alpm-mtree` crate: we need three
//! keywords (`type`, `size`, `sha256digest`) of a handful of `usr/bin`
//! entries, inside every `pacman -Syu` that touches a managed package. The
//! crate pulls a large dependency tree (winnow, the alpm-types stack) into a
//! binary that runs as root in a pacman hook, and validates a whole file
//! strictly, so one keyword it does not know would fail the hook where
//! pacman itself succeeds. This reader is lenient where that is safe: an
//! entry it cannot read is simply not a record, and a missing record never
//! makes a file trusted. flate2 (miniz_oxide backend, pure Rust) gunzips.
//!
//! [`Records`] reads each package's mtree at most once per run, and only for
//! the packages whose files are harvested or checked.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The largest decompressed mtree read (coreutils' is about 60 KiB).
const MAX_MTREE: u64 = 64 << 20;

/// What an mtree records about one regular file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// Size in bytes, when recorded.
    pub size: Option<u64>,
}

/// The regular files of one package's mtree with a `sha256digest`, by path
/// relative to the root without a leading `./` or `/` (`usr/bin/ls`).
pub type Mtree = HashMap<String, FileRecord>;

/// What pacman's record says about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The package's mtree records this file.
    Recorded(FileRecord),
    /// The package's mtree was read and has no regular file with a digest
    /// at this path.
    NotListed,
    /// No record can be read for the package (not installed at that
    /// version, or no mtree in its database entry, or unreadable): why.
    Unavailable(String),
}

/// Parses decompressed mtree text (the `#mtree` format bsdtar writes for
/// makepkg: `/set` and `/unset` lines, one entry per line, `\ooo` escapes
/// in names, `\` line continuations).
pub fn parse(text: &str) -> Mtree {
    let mut out = Mtree::new();
    let mut defaults: BTreeMap<String, String> = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        // A trailing backslash continues the entry on the next line.
        if let Some(head) = raw.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let Some(first) = words.next() else { continue };
        match first {
            "/set" => {
                for (k, v) in words.filter_map(|w| w.split_once('=')) {
                    defaults.insert(k.to_string(), v.to_string());
                }
            }
            "/unset" => {
                for w in words {
                    if w == "all" {
                        defaults.clear();
                    } else {
                        defaults.remove(w);
                    }
                }
            }
            // ".." (go up) and other special lines of the hierarchical form.
            _ if first.starts_with('/') || first == ".." => {}
            name => {
                let Some(path) = unescape(name) else { continue };
                let mut kw = defaults.clone();
                for (k, v) in words.filter_map(|w| w.split_once('=')) {
                    kw.insert(k.to_string(), v.to_string());
                }
                if kw.get("type").map(String::as_str) != Some("file") {
                    continue;
                }
                let Some(sha) = kw.get("sha256digest").or_else(|| kw.get("sha256")) else { continue };
                let sha = sha.to_ascii_lowercase();
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                let size = kw.get("size").and_then(|s| s.parse().ok());
                out.insert(path, FileRecord { sha256: sha, size });
            }
        }
    }
    out
}

/// A name of the mtree as a root-relative path: `\ooo` octal escapes and
/// `\<char>` decoded, the leading `./` or `/` dropped. `None` when it is
/// not UTF-8 or escapes badly.
fn unescape(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(d) = octal {
            let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            out.push(*b.get(i + 1)?);
            i += 2;
        }
    }
    let s = String::from_utf8(out).ok()?;
    let s = s.strip_prefix("./").or_else(|| s.strip_prefix('/')).unwrap_or(&s);
    if s.is_empty() || s == "." {
        return None;
    }
    Some(s.to_string())
}

/// Reads and parses one gzip-compressed (or plain) mtree file.
pub fn read(path: &Path) -> Result<Mtree, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    let read = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(&bytes[..]).take(MAX_MTREE).read_to_string(&mut text)
    } else {
        (&bytes[..]).take(MAX_MTREE).read_to_string(&mut text)
    };
    read.map_err(|e| format!("cannot decompress {}: {e}", path.display()))?;
    if !text.starts_with("#mtree") {
        return Err(format!("{} is not an mtree file", path.display()));
    }
    Ok(parse(&text))
}

/// pacman's records of the installed packages, each package's mtree read
/// at most once (when first asked for).
pub struct Records {
    local: PathBuf,
    read: HashMap<(String, String), Result<Mtree, String>>,
}

impl Records {
    /// The records of the local database under `dbpath` (pacman's `--dbpath`).
    pub fn new(dbpath: &Path) -> Records {
        Records { local: dbpath.join("local"), read: HashMap::new() }
    }

    /// What the mtree of `package` at `version` records for `path`
    /// (root-relative, e.g. `usr/bin/ls`).
    pub fn lookup(&mut self, package: &str, version: &str, path: &str) -> Lookup {
        let local = &self.local;
        let entry = self.read.entry((package.to_string(), version.to_string())).or_insert_with(|| {
            let dir = local.join(format!("{package}-{version}"));
            if !dir.join("desc").is_file() {
                return Err(format!("{package} {version} is not installed (no {})", dir.display()));
            }
            read(&dir.join("mtree"))
        });
        match entry {
            Ok(m) => match m.get(path.trim_start_matches('/')) {
                Some(r) => Lookup::Recorded(r.clone()),
                None => Lookup::NotListed,
            },
            Err(why) => Lookup::Unavailable(why.clone()),
        }
    }

    /// How many package mtrees this run read (for tests and facts).
    pub fn packages_read(&self) -> usize {
        self.read.len()
    }
}

/// A stored or installed file compared with pacman's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its sha256 is the one pacman recorded.
    Matches,
    /// pacman's record says otherwise: a clear sentence naming the package,
    /// the file and both digests.
    Differs(String),
    /// No record could be read (said why); nothing is concluded.
    Unrecorded(String),
}

impl Records {
    /// Compares `sha256` (of the file shown as `shown`) with what
    /// `package` `version` recorded for `usr/bin/<applet>`.
    pub fn judge(&mut self, package: &str, version: &str, applet: &str, shown: &str, sha256: &str) -> Verdict {
        let path = format!("usr/bin/{applet}");
        match self.lookup(package, version, &path) {
            Lookup::Recorded(r) if r.sha256 == sha256 => Verdict::Matches,
            Lookup::Recorded(r) => Verdict::Differs(format!(
                "{shown} has sha256 {sha256}, but pacman's record of {package} {version} (its local mtree) says {} for /{path}",
                r.sha256
            )),
            Lookup::NotListed => Verdict::Differs(format!(
                "pacman's record of {package} {version} (its local mtree) lists no file /{path}, yet {shown} is kept as its file"
            )),
            Lookup::Unavailable(why) => Verdict::Unrecorded(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn sample() -> String {
        format!(
            "#mtree\n\
             /set type=file uid=0 gid=0 mode=644\n\
             ./.BUILDINFO time=1700000000.0 size=5 md5digest=00 sha256digest={B}\n\
             /set mode=755\n\
             ./usr time=1700000000.0 type=dir\n\
             ./usr/bin/ls time=1700000000.0 size=142312 md5digest=ab sha256digest={A}\n\
             ./usr/bin/\\133 time=1700000000.0 size=7 sha256digest={B}\n\
             ./usr/bin/my\\040cmd time=1 size=9 \\\n    sha256digest={A}\n\
             ./usr/bin/\\346\\227\\245 time=1 sha256digest={B}\n\
             ./usr/bin/vdir type=link link=ls\n\
             /unset all\n\
             ./usr/bin/untyped sha256digest={A}\n\
             ./usr/bin/short type=file sha256digest=abc\n"
        )
    }

    #[test]
    fn files_with_digests_are_read_with_set_defaults_escapes_and_continuations() {
        let m = parse(&sample());
        assert_eq!(m["usr/bin/ls"], FileRecord { sha256: A.into(), size: Some(142312) });
        assert_eq!(m[".BUILDINFO"].sha256, B);
        assert_eq!(m["usr/bin/["].sha256, B, "\\133 is '['");
        assert_eq!(m["usr/bin/my cmd"], FileRecord { sha256: A.into(), size: Some(9) });
        assert_eq!(m["usr/bin/日"].size, None);
        assert!(!m.contains_key("usr"), "a directory is not a file");
        assert!(!m.contains_key("usr/bin/vdir"), "a symlink has no digest");
        assert!(!m.contains_key("usr/bin/untyped"), "/unset all dropped type=file");
        assert!(!m.contains_key("usr/bin/short"), "a malformed digest is no record");
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn bad_escapes_and_non_utf8_names_are_no_record() {
        assert_eq!(unescape("./a\\"), None);
        assert_eq!(unescape("./\\377"), None);
        assert_eq!(unescape("./\\400x"), None, "out of a byte's range");
        assert_eq!(unescape("."), None);
        assert_eq!(unescape("/usr/bin/a\\\\b").as_deref(), Some("usr/bin/a\\b"));
    }

    /// A fake local database: `local/<pkg>-<ver>/{desc,mtree}`.
    fn db(mtree: Option<&[u8]>) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("local/coreutils-9.10-1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("desc"), "%NAME%\ncoreutils\n").unwrap();
        if let Some(m) = mtree {
            std::fs::write(dir.join("mtree"), m).unwrap();
        }
        t
    }

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn records_read_the_gzipped_local_mtree_once_and_judge_files() {
        let t = db(Some(&gz(&sample())));
        let mut r = Records::new(t.path());
        assert_eq!(r.judge("coreutils", "9.10-1", "ls", "/usr/bin/ls", A), Verdict::Matches);
        match r.judge("coreutils", "9.10-1", "ls", "/store/ls", B) {
            Verdict::Differs(why) => {
                assert!(why.contains("/store/ls has sha256 fedc"), "{why}");
                assert!(why.contains("coreutils 9.10-1"), "{why}");
                assert!(why.contains(&format!("says {A} for /usr/bin/ls")), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(r.judge("coreutils", "9.10-1", "cat", "/usr/bin/cat", A), Verdict::Differs(w) if w.contains("lists no file /usr/bin/cat"))
        );
        assert_eq!(r.packages_read(), 1, "one package, one read");
        assert!(
            matches!(r.judge("coreutils", "9.9-1", "ls", "/usr/bin/ls", A), Verdict::Unrecorded(w) if w.contains("not installed"))
        );
        assert_eq!(r.packages_read(), 2);
    }

    #[test]
    fn a_missing_or_garbled_mtree_concludes_nothing() {
        let t = db(None);
        assert!(
            matches!(Records::new(t.path()).judge("coreutils", "9.10-1", "ls", "x", A), Verdict::Unrecorded(w) if w.contains("cannot read"))
        );
        let t = db(Some(b"\x1f\x8bgarbage"));
        assert!(
            matches!(Records::new(t.path()).judge("coreutils", "9.10-1", "ls", "x", A), Verdict::Unrecorded(w) if w.contains("decompress"))
        );
        let t = db(Some(&gz("not an mtree\n")));
        assert!(
            matches!(Records::new(t.path()).judge("coreutils", "9.10-1", "ls", "x", A), Verdict::Unrecorded(w) if w.contains("not an mtree"))
        );
        // Plain (uncompressed) text is read too.
        let t = db(Some(sample().as_bytes()));
        assert_eq!(Records::new(t.path()).judge("coreutils", "9.10-1", "ls", "x", A), Verdict::Matches);
    }
}
