//! `oxidizr-docgen OUTDIR`: writes the man page and the shell completions of
//! `oxidizr-hook`, generated from its one clap definition
//! ([`oxidizr_arch::app::cli::Cli`]), so `--help`, the man page and the
//! completions can never disagree.
//!
//! - `OUTDIR/oxidizr-hook.1`: clap_mangen's NAME, SYNOPSIS, DESCRIPTION and
//!   OPTIONS, then COMMANDS (every subcommand with its own arguments), EXIT
//!   STATUS (0, 1 for an unhealthy `verify`, and every [`ErrorId`] with its
//!   code and meaning), FILES, SEE ALSO and VERSION.
//! - `OUTDIR/completions/{oxidizr-hook.bash,_oxidizr-hook,oxidizr-hook.fish}`.
//!
//! A build-time tool: the PKGBUILD runs it and installs what it writes; the
//! package never ships this binary. Set `SOURCE_DATE_EPOCH` (makepkg does)
//! for a reproducible date in the page's title line.
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use oxidizr_arch::app::cli::Cli;
use oxidizr_arch::error::ErrorId;

/// The installed name of the command.
const BIN: &str = "oxidizr-hook";

/// The pacman hook files the package installs (kept equal to `hooks/` by a test).
const HOOKS: [&str; 3] =
    ["10-oxidizr-arch-pre-remove.hook", "10-oxidizr-arch-pre-upgrade.hook", "90-oxidizr-arch-post.hook"];

/// FILES: path and what it is.
const FILES: [(&str, &str); 11] = [
    (
        "/etc/oxidizr-arch/config.toml",
        "The managed families (GNU package, uutils packages, command prefix) and the keep_generations, \
         lock_timeout_secs, smoke_timeout_secs, reuse_smoke_verdicts, boot_fallback and policy settings (boot_fallback = true, the \
         default: the boot gate falls back from a generation that fails its live check at boot; false: it only \
         reports; policy: see POLICIES). A missing file means the built-in Arch defaults.",
    ),
    (
        "/usr/share/oxidizr-arch/compat/",
        "The differential corpus (cases/*.toml: each case an applet's command line with the inputs it builds in \
         a scratch directory) and the concern list (concerns.toml: applets the recommended and strict policies \
         keep on GNU, each with a reason and a source). Package data: edits are lost on upgrade.",
    ),
    (
        "/var/lib/oxidizr-arch/compat.json",
        "The differential results of the last switch, tied to the sha256 of both binaries and the case text: \
         a later hook re-runs only the cases whose binaries or text changed. Only a cache: deleting it is safe.",
    ),
    (
        "/usr/lib/oxidizr-arch",
        "The active pointer, the profiles, the immutable generations and the store of harvested GNU binaries. \
         Managed /usr/bin entries are symbolic links through active.",
    ),
    (
        "/var/lib/oxidizr-arch/state.json",
        "The desired profile, the pins, the history and the degraded flag; the intent file beside it records \
         an operation in flight.",
    ),
    ("/var/log/oxidizr-arch/facts.jsonl", "Audit facts, one JSON object a line (also sent to the journal)."),
    (
        "/var/cache/pacman/pkg/",
        "pacman's package cache (every CacheDir pacman-conf reports for /etc/pacman.conf, Includes followed). Only read: verify --repair extracts a \
         damaged stored GNU binary from the cached package of its exact version with bsdtar, and puts it back \
         only when it has the recorded sha256.",
    ),
    (
        "/usr/share/libalpm/hooks/",
        "The pacman hooks that run the pre-transaction and post-transaction commands (see below). A file of the \
         same name in /etc/pacman.d/hooks/ overrides one.",
    ),
    (
        "/usr/lib/systemd/system/oxidizr-verify.service",
        "Runs oxidizr-hook verify at boot (and daily with oxidizr-verify.timer); the unit fails when the system \
         is unhealthy.",
    ),
    (
        "/usr/lib/systemd/system/oxidizr-boot-gate.service",
        "Runs oxidizr-hook boot-gate early in every boot, before basic.target and the services that use the core \
         commands: when the active generation fails its live check it falls back to the newest generation that \
         passes, else to GNU, holds it, marks the state degraded and logs it (MESSAGE_ID \
         5c1f0f2b8a9e4d6b9c2e7a41d3b6f803). A later boot that passes on the fall-back clears the mark. Never \
         blocks the boot; bounded by TimeoutStartSec=2min.",
    ),
    (
        "/usr/lib/systemd/catalog/oxidizr-arch.catalog",
        "Explanations of the journal messages with a MESSAGE_ID (switched ...801, rolled back ...802, degraded \
         ...803, repaired ...804, all 5c1f0f2b8a9e4d6b9c2e7a41d3b6f80N) for journalctl -x. The entries carry \
         SYSLOG_IDENTIFIER=oxidizr-hook.",
    ),
];

/// DESCRIPTION, after clap's one-line about.
const DESCRIPTION: &str = "Installing oxidizr-arch changes nothing: the GNU files stay in place until the \
    administrator runs oxidizr-hook use uutils. Then the GNU binaries are harvested into a store by hard link, \
    an immutable generation of links is built and smoke-tested, and every managed /usr/bin command is switched \
    to it with one atomic pointer flip. pacman hooks keep that choice true across every transaction that \
    installs, upgrades or removes coreutils, findutils or a uutils package, rolling back when a smoke test \
    fails. oxidizr-hook disable, or removing the package, puts the pristine GNU files back.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [outdir] = args.as_slice() else {
        eprintln!("usage: oxidizr-docgen OUTDIR   (writes OUTDIR/{BIN}.1 and OUTDIR/completions/)");
        return ExitCode::from(2);
    };
    match generate(Path::new(outdir)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oxidizr-docgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the man page and the completions; returns the files written.
fn generate(outdir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let completions = outdir.join("completions");
    fs::create_dir_all(&completions)?;
    let man_path = outdir.join(format!("{BIN}.1"));
    fs::File::create(&man_path)?.write_all(&man_page()?)?;
    let mut written = vec![man_path];
    for (shell, name) in
        [(Shell::Bash, format!("{BIN}.bash")), (Shell::Zsh, format!("_{BIN}")), (Shell::Fish, format!("{BIN}.fish"))]
    {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), BIN, &mut text);
        let path = completions.join(name);
        fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// The whole man page, roff source.
fn man_page() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone())
        .title(BIN.to_uppercase())
        .date(title_date())
        .source(format!("oxidizr-arch {version}"))
        .manual("oxidizr-arch manual");
    let mut out = b".\\\" Generated by oxidizr-docgen from src/cli.rs and src/error.rs: do not edit.\n".to_vec();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    let mut roff = Roff::new();
    roff.control("PP", []).text([roman(DESCRIPTION)]);
    roff.to_writer(&mut out)?;
    man.render_options_section(&mut out)?;
    own_sections(&cmd).to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, else empty (no date beats a
/// date that changes on every build).
fn title_date() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// COMMANDS, EXIT STATUS, FILES and SEE ALSO.
fn own_sections(cmd: &Command) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let own: Vec<&Arg> = sub.get_arguments().filter(|a| !a.is_global_set() && !is_builtin(a)).collect();
        let mut head = vec![bold(sub.get_name())];
        for a in &own {
            head.push(roman(" "));
            head.extend(synopsis(a));
        }
        r.control("TP", []).text(head);
        r.text([roman(sub.get_about().map(ToString::to_string).unwrap_or_default())]);
        if !own.is_empty() {
            r.control("RS", []);
            for a in own {
                r.control("TP", []).text(synopsis(a));
                let mut help = a.get_help().map(ToString::to_string).unwrap_or_default();
                let values: Vec<String> =
                    a.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().into()).collect();
                if !values.is_empty() {
                    if !help.is_empty() && !help.ends_with('.') {
                        help.push('.');
                    }
                    help.push_str(&format!(" One of: {}.", values.join(", ")));
                }
                r.text([roman(help)]);
            }
            r.control("RE", []);
        }
    }

    r.control("SH", ["POLICIES"]);
    r.text([roman(
        "What breaks users of uutils is rarely a missing command; it is a command that behaves differently. \
         Before use uutils (and every pacman hook that rebuilds the uutils profile) switches, each applet that \
         GNU and an installed uutils package both provide is run on the shipped differential cases: the GNU and \
         the uutils command on the same inputs, in scratch directories, under C and the admin's locale \
         (LANG of /etc/locale.conf, else C.UTF-8), TZ=UTC, compared on exit status, standard output and the \
         files left behind (never standard error). The policy (config.toml policy, or use uutils --policy, \
         recorded until the next use without it) decides per applet:",
    )]);
    for (name, what) in [
        (
            "recommended",
            "(the default) every applet, except those on the concern list (cp, mv and rm: Ubuntu 26.04 LTS \
             keeps them on GNU after a security audit) and those whose cases diverge on this machine.",
        ),
        ("all", "every applet with a uutils counterpart; divergences are reported by compat, not acted on."),
        ("strict", "only applets with no divergence, no concern, and at least one case that came out equal."),
    ] {
        r.control("TP", []).text([bold(name)]);
        r.text([roman(what)]);
    }
    r.control("PP", []);
    r.text([roman(
        "An applet kept on GNU is a pin with a reason: use and the hooks print one line for it (keeping APPLET \
         on GNU: divergence|policy list|unchecked: ...), pacman copies it into pacman.log, the facts record it \
         (stage keep), and status lists it (kept on GNU). A divergence keeps one applet on GNU; the others \
         switch. An applet whose uutils command does not start or hangs still fails the smoke and rolls the \
         whole profile back. unpin APPLET overrides the policy for that applet; pin APPLET puts it back.",
    )]);
    r.control("PP", []);
    r.text([roman(
        "compat shows, before the first use as well, what the policy would do: one line per applet (switch, \
         keep with the reason, or broken), then every diverging case as a reproduction: the command line \
         ({dir} is an empty scratch directory), its inputs, what it guards, and the GNU and the uutils result. \
         compat --json gives the same per applet (decision, kept_by, reason, source, divergences).",
    )]);

    r.control("SH", ["EXIT STATUS"]);
    r.control("TP", []).text([bold("0")]);
    r.text([roman("Success; for verify: the system is healthy.")]);
    r.control("TP", []).text([bold("1")]);
    r.text([roman(
        "verify: the system is unhealthy; one line per problem was printed. status: DRIFT, the disk no \
         longer realizes the desired profile (a managed name is not our link, no or the wrong generation \
         is active; typically a pacman transaction ran without its hooks; not reported while the state \
         is DEGRADED, which says so itself); run verify --repair.",
    )]);
    r.control("TP", []).text([bold("75")]);
    r.text([roman(
        "verify: an operation is in progress (pacman is mid-transaction, or another oxidizr-hook holds \
         the lock past --lock-timeout); nothing was checked: run verify again when it is over.",
    )]);
    for id in ErrorId::ALL {
        r.control("TP", []).text([bold(id.exit_code().to_string()), roman(" ("), bold(id.as_str()), roman(")")]);
        r.text([roman(format!("{}.", upper_first(id.meaning())))]);
    }
    r.control("PP", []);
    r.text([roman(format!(
        "An error prints one line on standard error, {BIN}: error[E_ID]: reason, sends it to the journal, \
         and with --json also prints a JSON error object on standard output. Ids and codes never change."
    ))]);

    r.control("SH", ["FILES"]);
    for (path, what) in FILES {
        r.control("TP", []).text([italic(path)]);
        r.text([roman(what)]);
        if path == "/usr/share/libalpm/hooks/" {
            r.control("RS", []);
            for hook in HOOKS {
                r.control("TP", []).text([italic(hook)]);
            }
            r.control("RE", []);
        }
    }

    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("pacman"),
        roman("(8), "),
        bold("alpm-hooks"),
        roman("(5), "),
        bold("pacman.conf"),
        roman("(5), "),
        bold("systemctl"),
        roman("(1), "),
        bold("busybox"),
        roman("(1)"),
    ]);
    r
}

/// clap's own --help and --version.
fn is_builtin(a: &Arg) -> bool {
    matches!(a.get_id().as_str(), "help" | "version")
}

/// `--long <VALUE>`, `[--flag]`, `<NAME>...`, `[-- COMMAND...]`.
fn synopsis(a: &Arg) -> Vec<Inline> {
    let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(ToString::to_string)
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
    let dots = if many { "..." } else { "" };
    let (open, close) = if a.is_required_set() { ("", "") } else { ("[", "]") };
    if a.is_positional() {
        let lead = if a.is_last_set() { "-- " } else { "" };
        return vec![roman(format!("{open}{lead}")), italic(format!("{value}{dots}")), roman(close)];
    }
    let mut out = vec![roman(open)];
    match (a.get_long(), a.get_short()) {
        (Some(long), _) => out.push(bold(format!("--{long}"))),
        (None, Some(short)) => out.push(bold(format!("-{short}"))),
        (None, None) => {}
    }
    if a.get_num_args().is_some_and(|n| n.takes_values()) {
        out.push(roman(" "));
        out.push(italic(format!("{value}{dots}")));
    }
    out.push(roman(close));
    out
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_named_in_files_are_the_hooks_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks");
        let mut found: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".hook"))
            .collect();
        found.sort();
        assert_eq!(found, HOOKS.to_vec());
    }

    #[test]
    fn man_page_has_every_section_command_and_error_id() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        let first_macro = page.lines().find(|l| l.starts_with(".TH") || l.starts_with(".SH")).unwrap();
        assert!(first_macro.starts_with(".TH OXIDIZR-HOOK 1 "), "{first_macro}");
        for section in
            ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "POLICIES", "EXIT STATUS", "FILES", "SEE ALSO"]
        {
            assert!(
                page.contains(&format!(".SH {section}")) || page.contains(&format!(".SH \"{section}\"")),
                "{section}"
            );
        }
        for sub in ["status", "use", "verify", "disable", "boot\\-gate", "pre\\-transaction", "post\\-transaction"] {
            assert!(page.contains(&format!("\\fB{sub}\\fR")), "command {sub}");
        }
        for id in ErrorId::ALL {
            assert!(page.contains(&format!("\\fB{}\\fR", id.as_str())), "{}", id.as_str());
            assert!(page.contains(&format!("\\fB{}\\fR", id.exit_code())), "{}", id.exit_code());
        }
        for (path, _) in FILES {
            assert!(page.contains(&path.replace('-', "\\-")), "{path}");
        }
        assert!(page.contains("pacman"));
    }

    #[test]
    fn writes_page_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let written = generate(dir.path()).unwrap();
        assert_eq!(written.len(), 4);
        for name in [
            "oxidizr-hook.1",
            "completions/oxidizr-hook.bash",
            "completions/_oxidizr-hook",
            "completions/oxidizr-hook.fish",
        ] {
            let text = fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.contains("verify"), "{name} does not mention verify");
        }
    }
}
