//! Bad input gets a clear error with a stable id and exit code, and changes nothing.

use std::process::Command;

fn oxidizr_hook() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oxidizr-hook"))
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = oxidizr_hook().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_database_is_e_alpm() {
    let root = tempfile::tempdir().unwrap();
    let out = oxidizr_hook()
        .arg("status")
        .arg("--root")
        .arg(root.path())
        .arg("--dbpath")
        .arg(root.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(21), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with("oxidizr-hook: error[E_ALPM]: "), "{stderr}");
}

#[test]
fn corrupt_config_is_e_config_with_json_error() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/oxidizr-arch")).unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/pacman")).unwrap();
    std::fs::write(root.path().join("etc/oxidizr-arch/config.toml"), "[[family]]\nname = 3\n").unwrap();
    let out = oxidizr_hook().arg("status").arg("--json").arg("--root").arg(root.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(11));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["id"], "E_CONFIG");
    assert_eq!(doc["error"]["exit_code"], 11);
}
