//! Applet probes: what one command must do to count as working (the
//! table of special cases, `--version` for the rest) and judging one run's
//! outcome against it.

use super::*;

/// What an applet's probe must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    /// This exit status, whatever the output.
    Status(i32),
    /// Exit 0 and some non-blank stdout.
    Version,
    /// Exit 0 and exactly this stdout.
    Stdout(&'static str),
}

/// How one applet is run and judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) args: &'static [&'static str],
    pub(super) expect: Expect,
}

/// The special-case table of the module doc; every other applet gets
/// `--version`.
pub(super) fn probe_for(applet: &str) -> Probe {
    let (args, expect): (&'static [&'static str], Expect) = match applet {
        "false" => (&[], Expect::Status(1)),
        "true" | ":" => (&[], Expect::Status(0)),
        "[" => (&["1", "=", "1", "]"], Expect::Status(0)),
        "test" => (&["1", "=", "1"], Expect::Status(0)),
        "echo" => (&["ok"], Expect::Stdout("ok\n")),
        "printf" => (&["ok"], Expect::Stdout("ok")),
        _ => (&["--version"], Expect::Version),
    };
    Probe { args, expect }
}

/// Judges a finished probe: Ok, or a one-line reason.
pub(super) fn judge(expect: Expect, out: &Outcome) -> Result<(), String> {
    let code = out.status.code();
    let ok = match expect {
        Expect::Status(want) => code == Some(want),
        Expect::Version => code == Some(0) && !out.stdout.trim_ascii().is_empty(),
        Expect::Stdout(want) => code == Some(0) && out.stdout == want.as_bytes(),
    };
    if ok {
        return Ok(());
    }
    let want = match expect {
        Expect::Status(n) => format!("exit status {n}"),
        Expect::Version => "exit status 0 and a version on stdout".to_string(),
        Expect::Stdout(s) => format!("exit status 0 and stdout {s:?}"),
    };
    Err(format!("expected {want}, got {}", out.describe()))
}

/// A command that finished within its timeout.
pub(super) struct Outcome {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

impl Outcome {
    /// "exit status N, stdout "...", stderr: first line" on one line.
    pub(super) fn describe(&self) -> String {
        let mut s = status_text(self.status);
        s.push_str(&format!(", stdout {}", quoted(&self.stdout)));
        if let Some(line) = first_line(&self.stderr) {
            s.push_str(&format!(", stderr: {line}"));
        }
        s
    }
}
