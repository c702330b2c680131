//! process: run a child bounded in time, in its own process group, its
//! pipes drained concurrently, its output capped.
//!
//! The one way this crate runs another program (smoke checks, `bsdtar`,
//! `pacman-conf`):
//!
//! - the child leads a new process group. When it exits, the whole group
//!   is killed before the child is reaped, so nothing it forked outlives
//!   it; at the deadline the group is killed with `SIGKILL` and the child
//!   reaped. No zombie, no orphan in its group; a descendant that escaped
//!   into its own session and keeps the output open ends the run at the
//!   deadline instead of hanging it ([`Failure::OutputHeldOpen`]).
//! - stdout and stderr are pipes drained together (non-blocking reads
//!   driven by `poll`, the child's exit seen through a pidfd), so a child
//!   that fills one pipe while we wait on the other cannot deadlock us.
//!   At most [`OUTPUT_CAP`] bytes of each are kept; the rest is read and
//!   dropped.
//! - stdin is `/dev/null` or a file the caller opened ([`Input`]).
//!
//! [`run`] collects both outputs. [`run_streaming`] hands stdout to the
//! caller's reader instead (a member extracted from an archive can be
//! larger than any cap), while stderr keeps being drained behind it; the
//! same deadline bounds the reader too.
//!
//! No `pre_exec`: the crate forbids unsafe code. The process group comes
//! from [`std::os::unix::process::CommandExt::process_group`].

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
use rustix::process::{kill_process_group, pidfd_open, waitid, Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};

/// Output kept per stream; the rest is read and dropped.
pub const OUTPUT_CAP: usize = 1 << 20;

/// What the child reads on stdin.
#[derive(Debug)]
pub enum Input {
    /// `/dev/null`.
    Null,
    /// A file the caller opened (how it was opened, e.g. `O_NOFOLLOW`, is
    /// the caller's choice).
    File(File),
}

/// A child that exited within its deadline and closed its output.
#[derive(Debug)]
pub struct Outcome {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout (at most [`OUTPUT_CAP`] bytes; empty for [`run_streaming`]).
    pub stdout: Vec<u8>,
    /// Its stderr (at most [`OUTPUT_CAP`] bytes).
    pub stderr: Vec<u8>,
}

/// Why a run has no [`Outcome`]. In every case the child was reaped and its
/// process group killed (except [`Failure::Spawn`]: nothing ran).
#[derive(Debug)]
pub enum Failure {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// Still running at the deadline: killed with its group.
    TimedOut,
    /// It exited (with this status) but something it started kept its
    /// output open past the deadline.
    OutputHeldOpen(ExitStatus),
    /// Waiting for it failed (one line).
    Wait(String),
}

impl Failure {
    /// One line, with `timeout` named as the deadline that passed.
    pub fn describe(&self, timeout: Duration) -> String {
        match self {
            Failure::Spawn(e) => format!("cannot execute: {e}"),
            Failure::TimedOut => format!("timed out after {}", seconds(timeout)),
            Failure::OutputHeldOpen(status) => format!(
                "timed out after {}: {}, but a process it started keeps its output open",
                seconds(timeout),
                status_text(*status)
            ),
            Failure::Wait(why) => why.clone(),
        }
    }
}

/// Runs `cmd` with `stdin`, stdout and stderr piped, in a new process
/// group, for at most `timeout`, and collects both outputs (capped).
pub fn run(cmd: &mut Command, stdin: Input, timeout: Duration) -> Result<Outcome, Failure> {
    let deadline = deadline(timeout);
    let mut child = spawn(cmd, stdin)?;
    let mut out = Drain::new(child.stdout.take().map(OwnedFd::from));
    let mut err = Drain::new(child.stderr.take().map(OwnedFd::from));
    finish(&mut child, [&mut out, &mut err], deadline).map(|status| Outcome {
        status,
        stdout: out.buf,
        stderr: err.buf,
    })
}

/// Like [`run`], but stdout is read by `reader` (on this thread) while
/// stderr is drained behind it: every read `reader` makes also empties
/// stderr, so a child that says more on stderr than a pipe holds cannot
/// block the stream. A read past the deadline fails with
/// [`ErrorKind::TimedOut`]. When `reader` returns, the stdout pipe is
/// closed (a child still writing gets `EPIPE`/`SIGPIPE`), and the child is
/// waited for within what is left of `timeout`.
///
/// Returns the reader's result, whether it read stdout to its end, and the
/// run's outcome (its `stdout` is empty).
pub fn run_streaming<T>(
    cmd: &mut Command,
    stdin: Input,
    timeout: Duration,
    reader: impl FnOnce(&mut dyn Read) -> T,
) -> Result<Streamed<T>, Failure> {
    let deadline = deadline(timeout);
    let mut child = spawn(cmd, stdin)?;
    let mut out = Drain::new(child.stdout.take().map(OwnedFd::from));
    let mut err = Drain::new(child.stderr.take().map(OwnedFd::from));
    let mut stream = Stream { out: &mut out, err: &mut err, deadline, eof: false };
    let value = reader(&mut stream);
    let eof = stream.eof;
    // Closing our end: a child that still writes stops on EPIPE.
    out.pipe = None;
    let status = finish(&mut child, [&mut out, &mut err], deadline)?;
    Ok(Streamed { value, eof, outcome: Outcome { status, stdout: Vec::new(), stderr: err.buf } })
}

/// What [`run_streaming`] returns.
#[derive(Debug)]
pub struct Streamed<T> {
    /// The reader's result.
    pub value: T,
    /// True when the reader read stdout to its end.
    pub eof: bool,
    /// How the child ended (stdout empty: the reader had it).
    pub outcome: Outcome,
}

/// "exit status N" or "killed by signal N".
pub fn status_text(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("{s}"),
    }
}

/// "5s", "1.5s", "250ms".
pub fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// `timeout` from now; one too large to represent means "a very long time",
/// not a panic.
fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(86400 * 365))
}

/// Spawns `cmd` in a new process group with `stdin` and piped outputs,
/// retrying briefly on ETXTBSY (a freshly written script can be held open
/// for writing for an instant by a concurrent fork elsewhere).
fn spawn(cmd: &mut Command, stdin: Input) -> Result<Child, Failure> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let busy = rustix::io::Errno::TXTBSY.raw_os_error();
    let stdin = match stdin {
        Input::Null => None,
        Input::File(f) => Some(f),
    };
    let mut tries = 0;
    loop {
        let input = match &stdin {
            None => Stdio::null(),
            Some(f) => Stdio::from(f.try_clone().map_err(Failure::Spawn)?),
        };
        cmd.stdin(input);
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(busy) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            // The Command keeps its stdin Stdio (our duplicate of the file)
            // until it is dropped or reconfigured: release it now.
            other => {
                cmd.stdin(Stdio::null());
                return other.map_err(Failure::Spawn);
            }
        }
    }
}

/// Drains both pipes until the child exits and they close, or the
/// deadline passes; in every case the child is reaped and its group killed.
fn finish(child: &mut Child, mut pipes: [&mut Drain; 2], deadline: Instant) -> Result<ExitStatus, Failure> {
    let status = wait_exit(child, &mut pipes, deadline)?;
    if drain_until_closed(&mut pipes, deadline) {
        Ok(status)
    } else {
        Err(Failure::OutputHeldOpen(status))
    }
}

/// One output stream, read without blocking.
struct Drain {
    pipe: Option<File>,
    buf: Vec<u8>,
}

impl Drain {
    /// Takes a child pipe and makes our end non-blocking.
    fn new(fd: Option<OwnedFd>) -> Drain {
        let pipe = fd.map(File::from).filter(|f| set_nonblocking(f).is_ok());
        Drain { pipe, buf: Vec::new() }
    }

    /// Reads whatever is available now (keeping up to the cap); closes on
    /// EOF or error.
    fn pump(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else { return };
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(n) if n > 0 => {
                    let keep = n.min(OUTPUT_CAP.saturating_sub(self.buf.len()));
                    self.buf.extend_from_slice(&chunk[..keep]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // EOF, or a read error: nothing more will come.
                _ => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn closed(&self) -> bool {
        self.pipe.is_none()
    }
}

fn set_nonblocking(f: &File) -> rustix::io::Result<()> {
    fcntl_setfl(f, fcntl_getfl(f)? | OFlags::NONBLOCK)
}

/// stdout handed to a reader, stderr drained at every read.
struct Stream<'a> {
    out: &'a mut Drain,
    err: &'a mut Drain,
    deadline: Instant,
    eof: bool,
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            self.err.pump();
            let Some(pipe) = self.out.pipe.as_mut() else {
                self.eof = true;
                return Ok(0);
            };
            match pipe.read(buf) {
                Ok(n) => {
                    if n == 0 && !buf.is_empty() {
                        self.eof = true;
                        self.out.pipe = None;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= self.deadline {
                return Err(std::io::Error::new(ErrorKind::TimedOut, "the command's output did not end in time"));
            }
            let pipes = [&mut *self.out, &mut *self.err];
            wait_readable(&pipes, None, Duration::from_millis(10), self.deadline);
        }
    }
}

/// Pumps the pipes until the child exits (reaped, group killed) or the
/// deadline passes (group killed, child reaped).
fn wait_exit(child: &mut Child, pipes: &mut [&mut Drain; 2], deadline: Instant) -> Result<ExitStatus, Failure> {
    // Readable when the child exits: the wait below wakes on the exit
    // itself, not on the next tick of a polling loop.
    let exit = pidfd_open(Pid::from_child(child), PidfdFlags::empty()).ok();
    let mut pause = Duration::from_micros(500);
    loop {
        pipes.iter_mut().for_each(|p| p.pump());
        match reap_if_exited(child) {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => {
                pause = match &exit {
                    Some(exit) => wait_readable(pipes, Some(exit), pause, deadline),
                    None => nap(pause, deadline),
                }
            }
            Ok(None) => {
                kill_and_reap(child);
                return Err(Failure::TimedOut);
            }
            Err(e) => {
                kill_and_reap(child);
                return Err(Failure::Wait(e));
            }
        }
    }
}

/// Pumps the pipes until both are closed (true) or the deadline passes (false).
fn drain_until_closed(pipes: &mut [&mut Drain; 2], deadline: Instant) -> bool {
    let mut pause = Duration::from_micros(500);
    loop {
        pipes.iter_mut().for_each(|p| p.pump());
        if pipes.iter().all(|p| p.closed()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        pause = wait_readable(pipes, None, pause, deadline);
    }
}

/// Blocks until an open pipe has data or hangs up, `exit` (a pidfd) is
/// readable, or the deadline passes; returns the pause for a later nap.
/// Naps instead where poll is refused.
fn wait_readable(pipes: &[&mut Drain; 2], exit: Option<&OwnedFd>, pause: Duration, deadline: Instant) -> Duration {
    let mut fds: Vec<PollFd> =
        pipes.iter().filter_map(|p| p.pipe.as_ref()).map(|f| PollFd::new(f, PollFlags::IN)).collect();
    fds.extend(exit.map(|fd| PollFd::new(fd, PollFlags::IN)));
    let left = Timespec::try_from(deadline.saturating_duration_since(Instant::now()));
    match left.map(|t| poll(&mut fds, Some(&t))) {
        Ok(Ok(_)) | Ok(Err(rustix::io::Errno::INTR)) if !fds.is_empty() => pause,
        _ => nap(pause, deadline),
    }
}

/// Sleeps up to `pause` (never past `deadline`); returns the next, longer pause.
fn nap(pause: Duration, deadline: Instant) -> Duration {
    std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
    (pause * 2).min(Duration::from_millis(10))
}

/// If the child has exited: kills what is left of its process group while
/// the child (a zombie) still pins the group id, then reaps it.
fn reap_if_exited(child: &mut Child) -> Result<Option<ExitStatus>, String> {
    let pid = Pid::from_child(child);
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    match waitid(WaitId::Pid(pid), opts) {
        Ok(None) => Ok(None),
        Ok(Some(_)) => {
            kill_group(pid);
            child.wait().map(Some).map_err(|e| format!("cannot reap the command: {e}"))
        }
        Err(e) => Err(format!("cannot wait for the command: {e}")),
    }
}

/// SIGKILLs the child's whole group and reaps the child.
fn kill_and_reap(child: &mut Child) {
    kill_group(Pid::from_child(child));
    // The child is our own process: wait only fails if it was already reaped.
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILLs process group `pid` (the child leads it); never group 1.
fn kill_group(pid: Pid) {
    if pid.as_raw_nonzero().get() > 1 {
        // ESRCH (the group is already empty) is the only expected error.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// Where a host `chroot` binary is looked for, in order (Arch: /usr/bin,
/// Debian: /usr/sbin); never looked up through PATH.
pub const CHROOT_CANDIDATES: [&str; 4] = ["/usr/bin/chroot", "/usr/sbin/chroot", "/bin/chroot", "/sbin/chroot"];

/// The host's `chroot` binary, to run a command inside a `--root` other
/// than `/`; None when there is none.
pub fn host_chroot() -> Option<&'static std::path::Path> {
    CHROOT_CANDIDATES.iter().map(std::path::Path::new).find(|p| p.metadata().is_ok_and(|m| m.is_file()))
}

/// True when `root` names the host's `/` ("/", "//", "/."): commands then
/// run directly, not chrooted.
pub fn is_host_root(root: &std::path::Path) -> bool {
    use std::path::Component;
    root.has_root() && root.components().all(|c| matches!(c, Component::RootDir | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script).env("LC_ALL", "C").current_dir("/");
        c
    }

    /// More than a pipe holds (64 KiB) on both streams, stderr first.
    const CHATTY: &str = "head -c 200000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | tr '\\0' o; \
                          head -c 100000 /dev/zero | tr '\\0' e >&2";

    #[test]
    fn both_pipes_are_drained_together() {
        let out = run(&mut sh(CHATTY), Input::Null, Duration::from_secs(30)).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 300_000);
        assert_eq!(out.stderr.len(), 300_000);
        assert!(out.stdout.iter().all(|b| *b == b'o') && out.stderr.iter().all(|b| *b == b'e'));
    }

    #[test]
    fn a_streamed_stdout_does_not_block_on_a_full_stderr() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = run_streaming(&mut sh(CHATTY), Input::Null, Duration::from_secs(30), |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map(|_| v.len())
            });
            let _ = tx.send(got.map(|s| (s.value.unwrap(), s.eof, s.outcome.status.success(), s.outcome.stderr.len())));
        });
        let got = rx.recv_timeout(Duration::from_secs(30)).expect("deadlocked").unwrap();
        assert_eq!(got, (300_000, true, true, 300_000));
    }

    #[test]
    fn a_reader_that_stops_early_closes_the_pipe() {
        let script = "exec head -c 10000000 /dev/zero";
        let s = run_streaming(&mut sh(script), Input::Null, Duration::from_secs(30), |r| {
            let mut one = [0u8; 1];
            r.read_exact(&mut one)
        })
        .unwrap();
        assert!(s.value.is_ok() && !s.eof);
        // head died on the closed pipe (SIGPIPE) or failed on EPIPE: it did
        // not write its 10 MB to anyone.
        assert!(!s.outcome.status.success(), "{:?}", s.outcome.status);
    }

    #[test]
    fn output_is_capped_and_stdin_is_the_given_file() {
        let script = "head -c 3000000 /dev/zero; cat";
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"from stdin").unwrap();
        std::io::Seek::rewind(&mut f).unwrap();
        let out = run(&mut sh(script), Input::File(f), Duration::from_secs(30)).unwrap();
        assert_eq!(out.stdout.len(), OUTPUT_CAP);
        let out = run(&mut sh("cat"), Input::Null, Duration::from_secs(30)).unwrap();
        assert!(out.stdout.is_empty() && out.status.success());
    }

    #[test]
    fn the_deadline_kills_the_group_and_bounds_the_reader() {
        let t0 = Instant::now();
        let e = run(&mut sh("sleep 30 & sleep 30"), Input::Null, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, Failure::TimedOut), "{e:?}");
        assert_eq!(e.describe(Duration::from_millis(300)), "timed out after 300ms");
        let s = run_streaming(&mut sh("sleep 30"), Input::Null, Duration::from_millis(300), |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map_err(|e| e.kind())
        });
        match s {
            Err(Failure::TimedOut) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
        let e = run(&mut Command::new("/nonexistent/program"), Input::Null, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, Failure::Spawn(_)) && e.describe(Duration::ZERO).starts_with("cannot execute: "));
    }

    #[test]
    fn text_helpers() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(250)), "250ms");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(status_text(ExitStatus::from_raw(3 << 8)), "exit status 3");
        assert_eq!(status_text(ExitStatus::from_raw(9)), "killed by signal 9");
    }
}
