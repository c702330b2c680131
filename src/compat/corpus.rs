//! The differential corpus and the concern list: data shipped with the
//! package (`/usr/share/oxidizr-arch/compat/`), parsed and validated here.
//!
//! A [`Case`] is one command line of one applet with the inputs it builds
//! in a scratch directory; [`Concern`]s are applets the `recommended`
//! policy keeps on GNU for a recorded reason. When the root has no shipped
//! copy (a binary run outside its package), the copy built into the binary
//! is used: the same files, from `data/compat/` of the source tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorId, Result};

/// Where the package ships the corpus, relative to the root.
pub const SHIPPED: &str = "usr/share/oxidizr-arch/compat";

/// The corpus files built into the binary: (file name, text).
const BUILT_IN_CASES: &[(&str, &str)] = &[
    ("core.toml", include_str!("../../data/compat/cases/core.toml")),
    ("files.toml", include_str!("../../data/compat/cases/files.toml")),
    ("regressions.toml", include_str!("../../data/compat/cases/regressions.toml")),
    ("text.toml", include_str!("../../data/compat/cases/text.toml")),
];

/// The concern list built into the binary.
const BUILT_IN_CONCERNS: &str = include_str!("../../data/compat/concerns.toml");

/// What a case compares between the GNU and the uutils run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// The exit status (or the signal, or the timeout).
    Status,
    /// stdout, byte for byte, with the scratch path written `{dir}`.
    Stdout,
    /// The tree under the scratch directory after the run.
    Files,
}

fn all_aspects() -> Vec<Aspect> {
    vec![Aspect::Status, Aspect::Stdout, Aspect::Files]
}

/// The kind of a setup entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file with `content`.
    #[default]
    File,
    /// A directory.
    Dir,
    /// A symbolic link to `target`.
    Symlink,
}

/// One input a case builds in its scratch directory before each run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupEntry {
    /// Relative to the scratch directory; no `..`, no leading `/`.
    pub path: String,
    /// What to create.
    #[serde(default)]
    pub kind: Kind,
    /// A file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Permission bits as an octal string (default 0644, directories 0755).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Modification time, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// A symlink's target (any text; it is not followed when built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl SetupEntry {
    /// The permission bits to set.
    pub fn mode_bits(&self) -> u32 {
        let default = if self.kind == Kind::Dir { 0o755 } else { 0o644 };
        self.mode.as_deref().and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(default)
    }
}

/// One differential case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique across the corpus.
    pub id: String,
    /// The applet under test.
    pub applet: String,
    /// The arguments; `{dir}` is the scratch directory.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdin text (`{dir}` substituted); None: /dev/null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// What is compared (default: all three aspects).
    #[serde(default = "all_aspects")]
    pub compare: Vec<Aspect>,
    /// What the case guards (a field regression, an upstream issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The inputs, built in order before each run.
    #[serde(default)]
    pub setup: Vec<SetupEntry>,
}

impl Case {
    /// A digest of everything that defines the case: a changed case never
    /// reuses an old result.
    pub fn digest(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("cases serialize");
        Sha256::digest(&canonical).iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The command line as a reproduction shows it: the applet and its
    /// arguments, each quoted for a POSIX shell when needed.
    pub fn command_line(&self) -> String {
        std::iter::once(self.applet.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_word)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The inputs, one line each (`f: file "x" mode 0644 mtime 1000000000`).
    pub fn inputs(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .setup
            .iter()
            .map(|e| {
                let what = match e.kind {
                    Kind::File => format!("file {:?}", e.content.as_deref().unwrap_or("")),
                    Kind::Dir => "directory".to_string(),
                    Kind::Symlink => format!("symlink -> {}", e.target.as_deref().unwrap_or("")),
                };
                let mode = e.mode.as_ref().map(|m| format!(" mode {m}")).unwrap_or_default();
                let mtime = e.mtime.map(|t| format!(" mtime {t}")).unwrap_or_default();
                format!("{}: {what}{mode}{mtime}", e.path)
            })
            .collect();
        if let Some(s) = &self.stdin {
            lines.push(format!("stdin: {s:?}"));
        }
        lines
    }
}

fn shell_word(w: &str) -> String {
    let plain = !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:+,%@{}^".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// An applet kept on GNU by the `recommended` and `strict` policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concern {
    /// The applet.
    pub applet: String,
    /// One line: why.
    pub reason: String,
    /// Where the decision or evidence was published.
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConcernFile {
    #[serde(default, rename = "concern")]
    concerns: Vec<Concern>,
}

/// The whole corpus and concern list.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// Every case, in file order (files by name).
    pub cases: Vec<Case>,
    /// Applet -> its concern.
    pub concerns: BTreeMap<String, Concern>,
    /// Where it was read from (the shipped directory, or `built-in`).
    pub origin: String,
}

impl Corpus {
    /// The shipped corpus of `root` when the package installed it there,
    /// else the built-in copy. A shipped file that does not parse or
    /// validate is `E_CONFIG` (an edited data file never silently does
    /// nothing).
    pub fn load(root: &Path) -> Result<Corpus> {
        let dir = root.join(SHIPPED);
        let cases_dir = dir.join("cases");
        if !cases_dir.is_dir() {
            return Corpus::built_in();
        }
        let mut names: Vec<String> = std::fs::read_dir(&cases_dir)
            .map_err(|e| Error::io(ErrorId::Config, format!("cannot list {}", cases_dir.display()), e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        names.sort();
        let mut files = Vec::new();
        for name in names {
            let path = cases_dir.join(&name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::io(ErrorId::Config, format!("cannot read {}", path.display()), e))?;
            files.push((path.display().to_string(), text));
        }
        let concerns_path = dir.join("concerns.toml");
        let concerns = std::fs::read_to_string(&concerns_path)
            .map_err(|e| Error::io(ErrorId::Config, format!("cannot read {}", concerns_path.display()), e))?;
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        Corpus::parse(&files, (&concerns_path.display().to_string(), &concerns), &dir.display().to_string())
    }

    /// The copy built into the binary.
    pub fn built_in() -> Result<Corpus> {
        Corpus::parse(BUILT_IN_CASES, ("concerns.toml", BUILT_IN_CONCERNS), "built-in")
    }

    /// Parses and validates case files and the concern file.
    pub fn parse(files: &[(&str, &str)], concerns: (&str, &str), origin: &str) -> Result<Corpus> {
        let bad = |file: &str, why: String| Error::new(ErrorId::Config, format!("{file}: {why}"));
        let mut cases = Vec::new();
        let mut ids = BTreeSet::new();
        for (file, text) in files {
            let parsed: CaseFile = toml::from_str(text).map_err(|e| bad(file, e.message().to_string()))?;
            for case in parsed.cases {
                validate(&case).map_err(|why| bad(file, format!("case '{}': {why}", case.id.escape_debug())))?;
                if !ids.insert(case.id.clone()) {
                    return Err(bad(file, format!("case id '{}' is used twice", case.id)));
                }
                cases.push(case);
            }
        }
        let parsed: ConcernFile = toml::from_str(concerns.1).map_err(|e| bad(concerns.0, e.message().to_string()))?;
        let mut by_applet = BTreeMap::new();
        for c in parsed.concerns {
            crate::kernel::name::check_component(&c.applet)
                .map_err(|why| bad(concerns.0, format!("applet '{}': {why}", c.applet.escape_debug())))?;
            if c.reason.trim().is_empty() || c.source.trim().is_empty() {
                return Err(bad(concerns.0, format!("the concern for '{}' needs a reason and a source", c.applet)));
            }
            by_applet.insert(c.applet.clone(), c);
        }
        Ok(Corpus { cases, concerns: by_applet, origin: origin.to_string() })
    }

    /// The cases of one applet, in corpus order.
    pub fn cases_of<'a>(&'a self, applet: &'a str) -> impl Iterator<Item = &'a Case> + 'a {
        self.cases.iter().filter(move |c| c.applet == applet)
    }
}

/// Checks one case: a well-formed id and applet, setup paths inside the
/// scratch directory that never pass through a symlink the setup made,
/// modes in range, fields that fit the kind.
fn validate(case: &Case) -> std::result::Result<(), String> {
    let id_ok = !case.id.is_empty()
        && case.id.len() <= 64
        && case.id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && case.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !id_ok {
        return Err("the id must be 1-64 characters of [a-z0-9.-], starting with a letter or digit".into());
    }
    crate::kernel::name::check_component(&case.applet).map_err(|why| format!("applet: {why}"))?;
    if case.compare.is_empty() {
        return Err("compare is empty: the case would prove nothing".into());
    }
    let mut links: Vec<&str> = Vec::new();
    for e in &case.setup {
        let parts: Vec<&str> = e.path.split('/').collect();
        if e.path.starts_with('/') || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
            return Err(format!("setup path {:?} must be relative, without '.', '..' or empty parts", e.path));
        }
        if links.iter().any(|l| e.path.starts_with(&format!("{l}/"))) {
            return Err(format!("setup path {:?} goes through a symlink the setup made", e.path));
        }
        if let Some(m) = &e.mode {
            if u32::from_str_radix(m, 8).map_or(true, |v| v > 0o7777) {
                return Err(format!("setup mode {m:?} of {:?} is not an octal mode", e.path));
            }
        }
        match e.kind {
            Kind::Symlink if e.target.is_none() => return Err(format!("symlink {:?} has no target", e.path)),
            Kind::Symlink => links.push(&e.path),
            _ if e.target.is_some() => return Err(format!("{:?} is not a symlink but has a target", e.path)),
            Kind::Dir if e.content.is_some() => return Err(format!("directory {:?} has content", e.path)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_corpus_parses_and_is_large_enough() {
        let c = Corpus::built_in().unwrap();
        // The issue's floor: at least 300 cases across the applets scripts use.
        assert!(c.cases.len() >= 300, "{} cases", c.cases.len());
        let applets: BTreeSet<&str> = c.cases.iter().map(|c| c.applet.as_str()).collect();
        assert!(applets.len() >= 60, "{} applets covered", applets.len());
        for applet in ["cp", "mv", "rm"] {
            assert!(c.concerns.contains_key(applet), "{applet} has no concern");
        }
        let digests: BTreeSet<String> = c.cases.iter().map(Case::digest).collect();
        assert_eq!(digests.len(), c.cases.len(), "digests are distinct");
    }

    #[test]
    fn the_built_in_copy_is_every_shipped_file() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/compat/cases");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = BUILT_IN_CASES.iter().map(|(n, _)| n.to_string()).collect();
        built_in.sort();
        assert_eq!(built_in, on_disk, "every data/compat/cases/*.toml is built in (BUILT_IN_CASES)");
        for (name, text) in BUILT_IN_CASES {
            assert_eq!(std::fs::read_to_string(format!("{dir}/{name}")).unwrap(), *text);
        }
    }

    #[test]
    fn bad_cases_are_refused_with_the_file_and_the_case() {
        let concerns = ("c.toml", "");
        let parse = |text: &str| Corpus::parse(&[("x.toml", text)], concerns, "test");
        let ok = "[[case]]\nid = \"a-1\"\napplet = \"ls\"\nargs = [\"{dir}\"]\n";
        assert_eq!(parse(ok).unwrap().cases.len(), 1);
        for (bad, says) in [
            ("[[case]]\nid = \"A\"\napplet = \"ls\"\n", "the id"),
            ("[[case]]\nid = \"a\"\napplet = \"../ls\"\n", "applet"),
            ("[[case]]\nid = \"a\"\napplet = \"ls\"\n[[case.setup]]\npath = \"../x\"\n", "relative"),
            ("[[case]]\nid = \"a\"\napplet = \"ls\"\n[[case.setup]]\npath = \"/x\"\n", "relative"),
            ("[[case]]\nid = \"a\"\napplet = \"ls\"\n[[case.setup]]\npath = \"x\"\nmode = \"99\"\n", "octal"),
            ("[[case]]\nid = \"a\"\napplet = \"ls\"\n[[case.setup]]\npath = \"l\"\nkind = \"symlink\"\n", "no target"),
            (
                "[[case]]\nid = \"a\"\napplet = \"ls\"\n[[case.setup]]\npath = \"l\"\nkind = \"symlink\"\ntarget = \"/etc\"\n[[case.setup]]\npath = \"l/x\"\n",
                "through a symlink",
            ),
            ("[[case]]\nid = \"a\"\napplet = \"ls\"\ncompare = []\n", "compare is empty"),
            ("[[case]]\nid = \"a\"\napplet = \"ls\"\nbogus = 1\n", "unknown field"),
            (&format!("{ok}{ok}"), "used twice"),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.id, ErrorId::Config);
            assert!(e.reason.contains("x.toml") && e.reason.contains(says), "{bad:?}: {}", e.reason);
        }
    }

    #[test]
    fn a_concern_needs_a_reason_and_a_source() {
        let e = Corpus::parse(&[], ("c.toml", "[[concern]]\napplet = \"cp\"\nreason = \"\"\nsource = \"x\"\n"), "t")
            .unwrap_err();
        assert!(e.reason.contains("needs a reason and a source"), "{}", e.reason);
    }

    #[test]
    fn reproductions_quote_what_a_shell_would_split() {
        let c = Case {
            id: "x".into(),
            applet: "date".into(),
            args: vec!["-d".into(), "2024-01-01 +1 day".into(), "+%F".into(), "it's".into()],
            stdin: Some("a\n".into()),
            compare: all_aspects(),
            why: None,
            setup: vec![SetupEntry {
                path: "f".into(),
                kind: Kind::File,
                content: Some("x".into()),
                mode: Some("4755".into()),
                mtime: Some(5),
                target: None,
            }],
        };
        assert_eq!(c.command_line(), r"date -d '2024-01-01 +1 day' +%F 'it'\''s'");
        assert_eq!(c.inputs(), ["f: file \"x\" mode 4755 mtime 5", "stdin: \"a\\n\""]);
        assert_eq!(c.setup[0].mode_bits(), 0o4755);
    }
}
