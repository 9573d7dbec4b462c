//! `storyvis train --nproc N`: N training processes on this machine, started the way `torchrun
//! --standalone --nproc-per-node N` starts them (each with `RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`), then watched: when one fails, the others get the process
//! group's timeout to end on their own error (a rank that exits closes its connections, so
//! they usually end at once) and are then stopped. The ranks run in their own process group:
//! Ctrl-C (or SIGTERM) reaches the launcher, which passes it on to every rank once, and a rank
//! whose launcher dies is ended by the kernel (PR_SET_PDEATHSIG), never left behind.

use anyhow::{bail, ensure, Context, Result};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in the processes `launch` starts, so that they train as ranks instead of launching.
pub const LAUNCHED: &str = "STORYVIS_LAUNCHED";

/// Whether this process was started by `launch`.
pub fn launched() -> bool {
    std::env::var_os(LAUNCHED).is_some()
}

/// How a rank ended, in words.
fn how(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(9)) => {
            "was killed (signal 9, SIGKILL: out of memory, or killed by hand)".into()
        }
        (None, Some(s)) => format!("was ended by signal {s}"),
        _ => "ended".into(),
    }
}

/// Runs this command line again as `nproc` ranks; `threads`: each rank's CPU threads (default:
/// the machine's cores shared out, at least one each, as torchrun's OMP_NUM_THREADS=1 keeps
/// ranks from contending); `timeout`: the process group's.
pub fn launch(nproc: usize, threads: Option<usize>, timeout: Duration) -> Result<()> {
    ensure!((1..=1024).contains(&nproc), "--nproc {nproc}: give 1 to 1024 processes");
    ensure!(
        std::env::var_os("WORLD_SIZE").is_none(),
        "--nproc starts its own processes, but WORLD_SIZE is set (under torchrun?): leave out --nproc and let the launcher start the ranks"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port for the ranks' rendezvous")?
        .port();
    let exe = std::env::current_exe().context("finding this executable to start the ranks")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_rank = threads.unwrap_or((cores / nproc).max(1));
    // Ctrl-C and SIGTERM are counted here and passed on to every rank (they agree on the
    // iteration to stop at and save; a second one ends them at once).
    let signals = Arc::new(AtomicUsize::new(0));
    let count = signals.clone();
    let _ = ctrlc::set_handler(move || {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let mut forwarded = 0;
    let mut ranks: Vec<Option<Child>> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut c = Command::new(&exe);
        c.args(&args)
            .env(LAUNCHED, "1")
            .env("WORLD_SIZE", nproc.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .process_group(0);
        // SAFETY: prctl with constant arguments is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        if threads.is_none() {
            c.args(["--threads", &per_rank.to_string()]);
        }
        match c.spawn() {
            Ok(child) => ranks.push(Some(child)),
            Err(e) => {
                for child in ranks.iter_mut().flatten() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                bail!("starting rank {rank} of {nproc}: {e}");
            }
        }
    }
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; nproc];
    let mut first_failure: Option<(usize, ExitStatus, Instant)> = None;
    let mut stopped = Vec::new();
    loop {
        let asked = signals.load(Ordering::SeqCst);
        while forwarded < asked {
            for child in ranks.iter().flatten() {
                // SAFETY: kill(2) on the pid of a child not yet reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            }
            forwarded += 1;
        }
        for (rank, slot) in ranks.iter_mut().enumerate() {
            if let Some(child) = slot {
                if let Some(status) = child.try_wait()? {
                    statuses[rank] = Some(status);
                    *slot = None;
                    if !status.success() && first_failure.is_none() {
                        first_failure = Some((rank, status, Instant::now()));
                    }
                }
            }
        }
        if ranks.iter().all(Option::is_none) {
            break;
        }
        if let Some((_, _, at)) = first_failure {
            // The others end on their own error within the group's timeout; past it (and a
            // margin to save nothing half-written: checkpoints are written whole or not at
            // all), they are stopped.
            if at.elapsed() > timeout + Duration::from_secs(10) {
                for (rank, slot) in ranks.iter_mut().enumerate() {
                    if let Some(child) = slot.take() {
                        let _ = child_kill(child);
                        stopped.push(rank);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match first_failure {
        None => Ok(()),
        Some((_, status, _))
            if status.code() == Some(crate::INTERRUPTED)
                && statuses
                    .iter()
                    .all(|s| s.is_some_and(|s| s.code() == Some(crate::INTERRUPTED))) =>
        {
            std::process::exit(crate::INTERRUPTED)
        }
        Some((rank, status, _)) => {
            let mut msg = format!("rank {rank} of {nproc} {}", how(status));
            if status.code().is_some() {
                msg += " (its error is above)";
            }
            if !stopped.is_empty() {
                msg += &format!(
                    "; ranks {stopped:?} had not ended {} s later and were stopped",
                    timeout.as_secs() + 10
                );
            }
            bail!(
                "{msg}; the run ended. Checkpoints are written whole or not at all: a run that had saved one continues with --resume"
            )
        }
    }
}

fn child_kill(mut child: Child) -> std::io::Result<ExitStatus> {
    child.kill()?;
    child.wait()
}
