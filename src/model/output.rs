//! What a command prints: `==>` text for people, one JSON document for
//! scripts (`--json`), and the exit code. The JSON documents are the
//! commands' stable interface (the man page lists them).

use std::io::Write as _;

use crate::error::{Error, ErrorId, Result};

/// What a command prints: text lines and a JSON document.
pub struct Output {
    /// `==>`-style lines.
    pub text: String,
    /// The `--json` document.
    pub json: serde_json::Value,
    /// The exit code (0 unless the command reports unhealthy without failing).
    pub code: u8,
}

impl Output {
    /// Text and JSON with exit code 0.
    pub fn new(text: String, json: serde_json::Value) -> Output {
        Output { text, json, code: 0 }
    }

    /// Prints the text or the JSON on stdout.
    pub fn print(&self, json_mode: bool) -> Result<()> {
        let out = if json_mode {
            format!("{}\n", serde_json::to_string_pretty(&self.json).expect("json"))
        } else {
            self.text.clone()
        };
        std::io::stdout().write_all(out.as_bytes()).map_err(|e| Error::io(ErrorId::Io, "cannot write to stdout", e))
    }
}
