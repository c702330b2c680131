//! Smoke tests against real binaries in the testbed: GNU coreutils and
//! findutils in /usr/bin, uutils through its multicall binary, broken and
//! hanging commands, and chroot mode on an overlay of the testbed's root.
#![cfg(feature = "testbed")]

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use oxidizr_arch::smoke::{run, CheckResult, SmokeConfig, SmokeReport, SmokeTarget};

/// The tests run one at a time: the process checks below look at every
/// child of this process, and timings are measured alone.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn target(applet: &str, path: impl Into<String>) -> SmokeTarget {
    SmokeTarget { applet: applet.to_string(), path: path.into() }
}

/// Every command GNU coreutils puts in /usr/bin, plus find and xargs.
fn gnu_targets() -> Vec<SmokeTarget> {
    let out = run_ok(Command::new("dpkg").args(["-L", "coreutils"]));
    let mut targets: Vec<SmokeTarget> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("/usr/bin/") && Path::new(l).is_file())
        .map(|l| target(l.rsplit('/').next().unwrap(), l))
        .collect();
    targets.push(target("find", "/usr/bin/find"));
    targets.push(target("xargs", "/usr/bin/xargs"));
    assert!(targets.len() > 90, "dpkg -L coreutils listed only {} commands", targets.len());
    targets
}

fn explain(report: &SmokeReport) -> String {
    let lines: Vec<String> = report.failures().iter().map(|c| format!("{}: {}", c.name, c.detail)).collect();
    format!("{} failures:\n{}", lines.len(), lines.join("\n"))
}

/// The whole report passed, with every target and at least 15 behavioural checks.
fn assert_full_pass(report: &SmokeReport, targets: usize) {
    assert!(report.passed, "{}", explain(report));
    assert_eq!(report.applets.len(), targets);
    assert!(report.behaviour.len() >= 15, "only {} behavioural checks ran", report.behaviour.len());
    assert!(report.applets.iter().chain(&report.behaviour).all(|c| c.passed && c.detail.is_empty()));
}

fn check<'a>(report: &'a SmokeReport, name: &str) -> &'a CheckResult {
    report.applets.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}"))
}

/// Live processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    pids().into_iter().filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want)).collect()
}

/// [`processes_running`] once the processes a SIGKILL was sent to had a
/// chance to die: a killed orphan (reparented away from us) leaves /proc
/// only when the kernel gets to run its exit, which on a loaded machine
/// is not at once. Waits at most 5 s; whatever still runs then was not
/// killed.
fn still_running_after_kill(argv: &[&str]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_running(argv);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Processes whose parent is this test process (zombies included).
fn my_children() -> Vec<u32> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after.split_whitespace().nth(1) == Some(me.to_string().as_str())
        })
        .collect()
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

fn leftover_scratch_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return vec![] };
    entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.to_string_lossy().contains("oxidizr-smoke.")).collect()
}

#[test]
fn gnu_coreutils_and_findutils_pass_on_the_host_root() {
    require_testbed();
    let _serial = serial();
    let targets = gnu_targets();
    let start = Instant::now();
    let report = run(&SmokeConfig::default(), &targets, Some("/usr/bin"));
    let took = start.elapsed();
    println!(
        "GNU smoke: {} applets + {} behavioural checks in {took:?} (report says {} ms)",
        report.applets.len(),
        report.behaviour.len(),
        report.duration_ms
    );
    assert_full_pass(&report, targets.len());
    let names: Vec<&str> = report.applets.iter().map(|c| c.name.as_str()).collect();
    let expected: Vec<&str> = targets.iter().map(|t| t.applet.as_str()).collect();
    assert_eq!(names, expected, "results come back in target order");
    for name in ["find -name", "xargs -a", "sha256sum", "ls", "date -r", "ln -s + readlink"] {
        assert!(report.behaviour.iter().any(|c| c.name == name), "behavioural check {name} missing");
    }
    assert!(my_children().is_empty(), "children left: {:?}", my_children());
    assert!(leftover_scratch_dirs(&std::env::temp_dir()).is_empty());
}

#[test]
fn uutils_through_the_multicall_binary_pass() {
    require_testbed();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let list = run_ok(Command::new("/usr/bin/coreutils").arg("--list"));
    let mut targets = Vec::new();
    for cmd in String::from_utf8(list.stdout).unwrap().split_whitespace() {
        symlink("/usr/bin/coreutils", dir.path().join(cmd)).unwrap();
        targets.push(target(cmd, dir.path().join(cmd).to_str().unwrap()));
    }
    for cmd in ["find", "xargs"] {
        symlink(format!("/usr/lib/cargo/bin/findutils/{cmd}"), dir.path().join(cmd)).unwrap();
        targets.push(target(cmd, dir.path().join(cmd).to_str().unwrap()));
    }
    assert!(targets.len() > 90);
    let report = run(&SmokeConfig::default(), &targets, Some(dir.path().to_str().unwrap()));
    assert_full_pass(&report, targets.len());
    // The multicall binary really answered as each applet (argv[0] is the path).
    let ls = Command::new(dir.path().join("ls")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).contains("uutils"));
}

#[test]
fn broken_hanging_and_missing_commands_fail_without_leaking_processes() {
    require_testbed();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let targets = vec![
        target("ls", script(dir.path(), "ls", "#!/bin/sh\nexit 1\n")),
        target("cat", script(dir.path(), "cat", "#!/bin/sh\nexec sleep 1000000\n")),
        // No exec: the shell forks sleep, which must die with its process group.
        target("tee", script(dir.path(), "tee", "#!/bin/sh\nsleep 1000001\necho never\n")),
        target("sort", dir.path().join("missing").to_str().unwrap().to_string()),
        target("true", "/usr/bin/true"),
    ];
    let cfg = SmokeConfig { timeout: Duration::from_secs(1), ..SmokeConfig::default() };
    let start = Instant::now();
    let report = run(&cfg, &targets, None);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "the run took {took:?}");
    assert!(!report.passed);
    assert!(report.behaviour.is_empty());

    println!("{}", explain(&report));
    let ls = check(&report, "ls");
    assert!(!ls.passed && ls.detail.contains("exit status 1"), "{ls:?}");
    for hung in ["cat", "tee"] {
        let c = check(&report, hung);
        assert!(!c.passed && c.detail.contains("timed out after 1s"), "{c:?}");
        assert!(c.duration_ms < 3000, "{c:?}");
    }
    let missing = check(&report, "sort");
    assert!(!missing.passed && missing.detail.contains("cannot execute"), "{missing:?}");
    assert!(check(&report, "true").passed);
    assert_eq!(report.failures().len(), 4);
    assert!(!report.failures().iter().any(|c| c.detail.contains('\n')));

    assert!(still_running_after_kill(&["sleep", "1000000"]).is_empty(), "the hung sleep survived");
    assert!(still_running_after_kill(&["sleep", "1000001"]).is_empty(), "the forked sleep survived");
    assert!(my_children().is_empty(), "children left (zombies?): {:?}", my_children());
}

#[test]
fn a_descendant_that_escapes_its_group_cannot_hang_the_run() {
    require_testbed();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // setsid puts sleep in its own session: it keeps stdout open after the
    // script exits, and killing the script's group cannot reach it. The
    // script waits until the escape is done (the marker exists).
    let marker = dir.path().join("escaped");
    let body = format!(
        "#!/bin/sh\nsetsid /bin/sh -c 'touch {m}; exec sleep 1000002' &\n\
         while [ ! -e {m} ]; do sleep 0.01; done\necho ls 1.0\n",
        m = marker.display()
    );
    let t = target("ls", script(dir.path(), "ls", &body));
    let cfg = SmokeConfig { timeout: Duration::from_secs(1), ..SmokeConfig::default() };
    let start = Instant::now();
    let report = run(&cfg, &[t], None);
    assert!(start.elapsed() < Duration::from_secs(3), "the run took {:?}", start.elapsed());
    let ls = check(&report, "ls");
    assert!(!ls.passed && ls.detail.contains("keeps its output open"), "{ls:?}");
    assert!(my_children().is_empty());
    // The escapee is no child of ours any more: end it by its id.
    for pid in processes_running(&["sleep", "1000002"]) {
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

#[test]
fn clean_environment_and_argv0() {
    require_testbed();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Passes only when argv[0] is the path, the environment is exactly
    // PATH and LC_ALL, and stdin is empty.
    let body = format!(
        "#!/bin/sh\n[ \"$0\" = \"{}/probe\" ] || exit 3\n\
         [ \"$(/usr/bin/env | /usr/bin/sort | /usr/bin/tr '\\n' ' ')\" = 'LC_ALL=C PATH=/usr/bin:/bin PWD=/ ' ] || exit 4\n\
         [ -z \"$(/usr/bin/cat)\" ] || exit 5\n[ \"$(pwd)\" = / ] || exit 6\necho probe 1.0\n",
        dir.path().display()
    );
    let t = target("probe", script(dir.path(), "probe", &body));
    let report = run(&SmokeConfig::default(), &[t], None);
    assert!(report.passed, "{}", explain(&report));
}

#[test]
fn a_missing_bin_dir_fails_and_absent_commands_are_left_out() {
    require_testbed();
    let _serial = serial();
    let report = run(&SmokeConfig::default(), &[], Some("/nonexistent/bin"));
    assert!(!report.passed);
    assert_eq!(report.behaviour.len(), 1);
    assert_eq!(report.behaviour[0].name, "bin_dir");

    let dir = tempfile::tempdir().unwrap();
    for cmd in ["ls", "sort"] {
        symlink(format!("/usr/bin/{cmd}"), dir.path().join(cmd)).unwrap();
    }
    let report = run(&SmokeConfig::default(), &[], Some(dir.path().to_str().unwrap()));
    let names: Vec<&str> = report.behaviour.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ls", "sort"]);
    assert!(report.passed, "{}", explain(&report));
}

#[test]
fn behavioural_checks_catch_wrong_output() {
    require_testbed();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["cat", "ls", "sha256sum", "sort", "tr", "find"] {
        symlink(format!("/usr/bin/{cmd}"), dir.path().join(cmd)).unwrap();
    }
    // Plausible but wrong: hidden files listed, input left unsorted, a
    // wrong hash; tr and find stay GNU and must still pass.
    fs::remove_file(dir.path().join("ls")).unwrap();
    script(dir.path(), "ls", "#!/bin/sh\nexec /usr/bin/ls -A \"$@\"\n");
    fs::remove_file(dir.path().join("sort")).unwrap();
    script(dir.path(), "sort", "#!/bin/sh\nexec /usr/bin/cat \"$@\"\n");
    fs::remove_file(dir.path().join("sha256sum")).unwrap();
    script(dir.path(), "sha256sum", "#!/bin/sh\nexec /usr/bin/md5sum \"$@\"\n");
    let report = run(&SmokeConfig::default(), &[], Some(dir.path().to_str().unwrap()));
    println!("{}", explain(&report));
    let failed: Vec<&str> = report.failures().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["ls", "sort", "sha256sum"], "{}", explain(&report));
    assert!(report.failures().iter().all(|c| c.detail.contains("expected")), "{}", explain(&report));
    let passed: Vec<&str> = report.behaviour.iter().filter(|c| c.passed).map(|c| c.name.as_str()).collect();
    assert_eq!(passed, ["cat", "find -name", "tr"]);
}

#[test]
fn the_report_round_trips_through_json() {
    require_testbed();
    let _serial = serial();
    let report = run(&SmokeConfig::default(), &[target("true", "/usr/bin/true")], None);
    let json = serde_json::to_string(&report).unwrap();
    let back: SmokeReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert!(json.contains("\"duration_ms\""));
}

#[test]
fn chroot_mode_runs_inside_the_root_and_scratches_in_its_tmp() {
    require_testbed();
    let _serial = serial();
    let root = OverlayRoot::new();
    assert!(!root.upper.join("tmp").exists());
    let targets = gnu_targets();
    let cfg = SmokeConfig { root: root.merged.clone(), ..SmokeConfig::default() };
    let report = run(&cfg, &targets, Some("/usr/bin"));
    assert_full_pass(&report, targets.len());
    // The scratch dir was made (copying /tmp up into the overlay's upper
    // layer) and removed again; none was made in the host's /tmp.
    assert!(root.upper.join("tmp").is_dir(), "nothing was created under ROOT/tmp");
    assert!(leftover_scratch_dirs(&root.merged.join("tmp")).is_empty());
    assert!(leftover_scratch_dirs(Path::new("/tmp")).is_empty());

    // Paths are resolved inside the root: a file only in the root runs, a
    // host path that is not in the root does not.
    let only_inside = root.merged.join("usr/local/bin/inside-only");
    fs::write(&only_inside, "#!/bin/sh\necho inside 1.0\n").unwrap();
    fs::set_permissions(&only_inside, fs::Permissions::from_mode(0o755)).unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    let host_only = script(host_dir.path(), "host-only", "#!/bin/sh\necho host 1.0\n");
    let report = run(
        &cfg,
        &[target("inside", "/usr/local/bin/inside-only"), target("host", host_only.as_str())],
        Some("/nonexistent"),
    );
    assert!(check(&report, "inside").passed, "{}", explain(&report));
    let host = check(&report, "host");
    assert!(!host.passed && host.detail.contains("exit status 127"), "{host:?}");
    assert_eq!(report.behaviour[0].name, "bin_dir");
    assert!(my_children().is_empty());
}
