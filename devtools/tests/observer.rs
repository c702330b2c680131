//! Invariants 1 and 2 under concurrency: while another process flips the
//! `active` pointer 1,000 times between a GNU and a uutils generation, an
//! observer executes every managed applet in a loop and reads every link.
//!
//! The root (on a fresh tmpfs: renameat's atomicity is the VFS's, the same
//! on every filesystem, and tmpfs keeps the 1,000 fsynced flips within a
//! few seconds; `tests/fs_matrix.rs` flips on ext4, btrfs and xfs) is built
//! with the safety kernel the
//! engine uses: two generations staged and published with
//! `kernel::publish::Staging`, whose `bin/<applet>` entries point at real
//! executables by absolute host paths (the testbed's GNU `/usr/bin/<applet>`
//! and uutils' `/usr/lib/cargo/bin/{coreutils,findutils}/<applet>`), and
//! `ROOT/usr/bin/<applet>` links to `ROOT/usr/lib/oxidizr-arch/active/bin/<applet>`
//! (absolute host paths, so the host kernel resolves them). The flipper is
//! `oxidizr-flipper`, a separate process calling `kernel::swap::replace_with_symlink`,
//! 2 ms apart and never faster than the observer executes commands (it
//! takes one token per flip, the observer gives one per command it ran:
//! the overlap does not depend on the machine's load).
//!
//! What "never a mix" means here, precisely: one *resolution* of `active`
//! yields one generation for every applet. The observer opens
//! `ROOT/usr/lib/oxidizr-arch/active/bin` once (one resolution of the
//! pointer) and `readlinkat`s every applet relative to that directory fd:
//! all of them must name the same generation's targets. Independent
//! per-path resolutions (each exec, each `readlink` of a full path) each go
//! through the single pointer and must each land in one of the two
//! generations, never ENOENT/ELOOP; a sequence of them may straddle a flip,
//! which is not a mix.
#![cfg(feature = "testbed")]

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::kfs::{FsKind, LoopFs};
use common::*;
use oxidizr_arch::kernel::publish::Staging;
use oxidizr_arch::kernel::swap::replace_with_symlink;
use oxidizr_arch::kernel::FsyncLog;
use oxidizr_arch::model::layout::Layout;
use rustix::fs::{Mode, OFlags};

const FLIPS: u64 = 1000;
/// Pause between flips: the 1,000 flips span a few seconds, long enough
/// for the observer to run every applet many times while they happen.
const PAUSE_US: u64 = 2000;
const EXEC_THREADS: usize = 2;

/// One managed applet and its two targets (absolute host paths).
struct Applet {
    name: String,
    gnu: String,
    uu: String,
}

/// Every applet the GNU coreutils and findutils packages of the testbed
/// ship in /usr/bin that uutils also provides.
fn managed_applets() -> Vec<Applet> {
    let out = run_ok(Command::new("dpkg").args(["-L", "coreutils", "findutils"]));
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("/usr/bin/").or_else(|| l.strip_prefix("/bin/")))
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(str::to_string)
        .collect();
    let mut applets = Vec::new();
    for name in names {
        let gnu = format!("/usr/bin/{name}");
        assert!(fs::symlink_metadata(&gnu).unwrap().is_file(), "{gnu} is GNU's regular file");
        let uu = ["coreutils", "findutils"]
            .iter()
            .map(|f| format!("/usr/lib/cargo/bin/{f}/{name}"))
            .find(|p| fs::metadata(p).is_ok());
        if let Some(uu) = uu {
            applets.push(Applet { name, gnu, uu });
        }
    }
    applets
}

/// The probe of the smoke tests (src/smoke/probes.rs): arguments and whether the
/// output names the implementation (`--version`).
fn probe(applet: &str) -> (&'static [&'static str], Option<i32>) {
    match applet {
        "false" => (&[], Some(1)),
        "true" => (&[], Some(0)),
        "[" => (&["1", "=", "1", "]"], Some(0)),
        "test" => (&["1", "=", "1"], Some(0)),
        "echo" | "printf" => (&["ok"], Some(0)),
        _ => (&["--version"], None),
    }
}

#[derive(Default)]
struct Counts {
    execs: AtomicU64,
    execs_gnu: AtomicU64,
    execs_uutils: AtomicU64,
    snapshots: AtomicU64,
    snapshot_reads: AtomicU64,
    link_reads: AtomicU64,
    stats: AtomicU64,
    transitions: AtomicU64,
    mixed: AtomicU64,
    failures: AtomicU64,
}

struct Observer {
    root: PathBuf,
    applets: Vec<Applet>,
    stop: AtomicBool,
    counts: Counts,
    per_applet: Vec<AtomicU64>,
    next: AtomicUsize,
    failures: Mutex<Vec<String>>,
    /// The flipper's stdin: one byte per command run lets it flip once.
    tokens: Mutex<Option<ChildStdin>>,
}

impl Observer {
    fn fail(&self, what: String) {
        self.counts.failures.fetch_add(1, Ordering::SeqCst);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }

    fn usr_bin(&self, a: &Applet) -> PathBuf {
        self.root.join("usr/bin").join(&a.name)
    }

    /// Executes applets round-robin through ROOT/usr/bin until stopped.
    fn exec_loop(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            let i = self.next.fetch_add(1, Ordering::SeqCst) % self.applets.len();
            let a = &self.applets[i];
            self.exec_one(a);
            self.per_applet[i].fetch_add(1, Ordering::SeqCst);
            self.counts.execs.fetch_add(1, Ordering::SeqCst);
            if let Some(t) = self.tokens.lock().unwrap().as_mut() {
                // After the last flip the flipper is gone: EPIPE is fine.
                let _ = t.write_all(b".");
            }
        }
    }

    fn exec_one(&self, a: &Applet) {
        let (args, status) = probe(&a.name);
        let path = self.usr_bin(a);
        let mut cmd = Command::new(&path);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return self.fail(format!("exec {}: {e} (errno {:?})", a.name, e.raw_os_error())),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st.code(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return self.fail(format!("{} timed out", a.name));
                }
                Err(e) => return self.fail(format!("wait {}: {e}", a.name)),
            }
        };
        let mut stdout = String::new();
        let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
        match status {
            Some(want) if code == Some(want) => {}
            Some(want) => self.fail(format!("{} exited {code:?}, expected {want}", a.name)),
            None if code != Some(0) || stdout.trim().is_empty() => {
                self.fail(format!("{} --version exited {code:?} with stdout {stdout:?}", a.name))
            }
            None if stdout.contains("GNU ") => {
                self.counts.execs_gnu.fetch_add(1, Ordering::SeqCst);
            }
            None => {
                self.counts.execs_uutils.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Snapshots and link reads until stopped.
    fn read_loop(&self) {
        let active_bin = self.root.join("usr/lib/oxidizr-arch/active/bin");
        let mut last: Option<u8> = None;
        while !self.stop.load(Ordering::SeqCst) {
            // One resolution of `active`: every applet read through that fd.
            match rustix::fs::open(&active_bin, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
                Err(e) => self.fail(format!("open {}: {e}", active_bin.display())),
                Ok(fd) => {
                    let mut seen: Option<u8> = None;
                    for a in &self.applets {
                        let gen = match rustix::fs::readlinkat(&fd, a.name.as_str(), Vec::new()) {
                            Ok(t) if t.as_bytes() == a.gnu.as_bytes() => 1,
                            Ok(t) if t.as_bytes() == a.uu.as_bytes() => 2,
                            Ok(t) => {
                                self.fail(format!("active/bin/{} -> {t:?}: neither generation", a.name));
                                continue;
                            }
                            Err(e) => {
                                self.fail(format!("readlinkat active/bin/{}: {e}", a.name));
                                continue;
                            }
                        };
                        self.counts.snapshot_reads.fetch_add(1, Ordering::SeqCst);
                        match seen {
                            None => seen = Some(gen),
                            Some(g) if g != gen => {
                                self.counts.mixed.fetch_add(1, Ordering::SeqCst);
                                self.fail(format!("mixed snapshot: {} from generation {gen}, others {g}", a.name));
                            }
                            Some(_) => {}
                        }
                    }
                    self.counts.snapshots.fetch_add(1, Ordering::SeqCst);
                    if seen.is_some() && last.is_some() && seen != last {
                        self.counts.transitions.fetch_add(1, Ordering::SeqCst);
                    }
                    last = seen.or(last);
                }
            }
            // Independent resolutions: each full path through the pointer.
            for a in &self.applets {
                match fs::read_link(active_bin.join(&a.name)) {
                    Ok(t) if t.as_os_str() == a.gnu.as_str() || t.as_os_str() == a.uu.as_str() => {}
                    Ok(t) => self.fail(format!("readlink active/bin/{} -> {}", a.name, t.display())),
                    Err(e) => self.fail(format!("readlink active/bin/{}: {e}", a.name)),
                }
                match fs::read_link(self.usr_bin(a)) {
                    Ok(t) if t == active_bin.join(&a.name) => {}
                    other => self.fail(format!("usr/bin/{} is {other:?}, not our link", a.name)),
                }
                self.counts.link_reads.fetch_add(2, Ordering::SeqCst);
                match fs::metadata(self.usr_bin(a)) {
                    Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => {}
                    Ok(_) => self.fail(format!("usr/bin/{} does not resolve to an executable", a.name)),
                    Err(e) => self.fail(format!("stat usr/bin/{}: {e} (errno {:?})", a.name, e.raw_os_error())),
                }
                self.counts.stats.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// Builds the two generations and the links; `active` names generation 1.
fn build_root(root: &Path, applets: &[Applet]) {
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    let layout = Layout::open(root).unwrap();
    let gens = layout.dir("usr/lib/oxidizr-arch/generations", true).unwrap();
    let mut log = FsyncLog::default();
    for (n, uutils) in [(1, false), (2, true)] {
        let mut st = Staging::create(&gens, &n.to_string()).unwrap();
        let bin = st.mkdir("bin").unwrap();
        for a in applets {
            st.symlink_in(bin, &a.name, if uutils { &a.uu } else { &a.gnu }).unwrap();
        }
        st.write_in(0, "manifest.json", b"{}\n", &mut log).unwrap();
        st.publish(&n.to_string(), &mut log).unwrap();
    }
    replace_with_symlink(&layout.lib(false).unwrap(), "active", "generations/1", &mut log).unwrap();
    for a in applets {
        let link = root.join("usr/lib/oxidizr-arch/active/bin").join(&a.name);
        std::os::unix::fs::symlink(link, root.join("usr/bin").join(&a.name)).unwrap();
    }
}

#[test]
fn a_concurrent_observer_never_sees_a_missing_command_or_a_mixed_generation() {
    require_testbed();
    let applets = managed_applets();
    assert!(applets.len() > 90, "GNU applets with a uutils counterpart: {}", applets.len());
    let tmp = tempfile::tempdir().unwrap();
    let fs = LoopFs::mount(FsKind::Tmpfs, &tmp.path().join("root"));
    build_root(&fs.dir, &applets);

    let obs = Observer {
        root: fs.dir.clone(),
        per_applet: applets.iter().map(|_| AtomicU64::new(0)).collect(),
        applets,
        stop: AtomicBool::new(false),
        counts: Counts::default(),
        next: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
        tokens: Mutex::new(None),
    };
    let flipper = std::thread::scope(|s| {
        for _ in 0..EXEC_THREADS {
            s.spawn(|| obs.exec_loop());
        }
        s.spawn(|| obs.read_loop());
        // Let the observer run a moment before the first flip.
        std::thread::sleep(Duration::from_millis(100));
        let mut flipper = Command::new(env!("CARGO_BIN_EXE_oxidizr-flipper"))
            .arg(&fs.dir)
            .args([FLIPS.to_string(), PAUSE_US.to_string(), "generations/1".into(), "generations/2".into()])
            .arg("--tokens")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        *obs.tokens.lock().unwrap() = flipper.stdin.take();
        let out = flipper.wait_with_output();
        obs.stop.store(true, Ordering::SeqCst);
        obs.tokens.lock().unwrap().take();
        out.unwrap()
    });
    assert!(flipper.status.success(), "flipper: {flipper:?}");
    let report: serde_json::Value = serde_json::from_slice(&flipper.stdout).unwrap();

    let c = &obs.counts;
    let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let min_per_applet = obs.per_applet.iter().map(get).min().unwrap();
    let summary = format!(
        "observer: {} flips ({} changed, {} ms, slowest flip {} us); {} applets; {} executions \
         ({} GNU, {} uutils by --version, min {} per applet); {} snapshots ({} reads through one \
         active fd, {} generation changes seen); {} link reads; {} stats; {} mixed; {} failures",
        report["flips"],
        report["changed"],
        report["elapsed_ms"],
        report["max_flip_us"],
        obs.applets.len(),
        get(&c.execs),
        get(&c.execs_gnu),
        get(&c.execs_uutils),
        min_per_applet,
        get(&c.snapshots),
        get(&c.snapshot_reads),
        get(&c.transitions),
        get(&c.link_reads),
        get(&c.stats),
        get(&c.mixed),
        get(&c.failures),
    );
    // Not captured by libtest: the counts show in the test log.
    let _ = writeln!(std::io::stderr(), "{summary}");
    let failures = obs.failures.lock().unwrap();
    assert!(failures.is_empty(), "{summary}\nfirst failures:\n{}", failures.join("\n"));
    assert_eq!(get(&c.mixed), 0, "{summary}");
    assert_eq!((report["flips"].as_u64(), report["changed"].as_u64()), (Some(FLIPS), Some(FLIPS)), "{summary}");
    // One token per flip: at least 1,000 commands ran, round-robin.
    assert!(get(&c.execs) >= FLIPS, "{summary}");
    assert!(min_per_applet >= 2, "every applet runs at least twice during the flips: {summary}");
    assert!(get(&c.execs_gnu) > 0 && get(&c.execs_uutils) > 0, "both generations executed: {summary}");
    assert!(get(&c.transitions) >= 50, "the observer saw the flips: {summary}");
}
