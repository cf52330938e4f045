//! Signals turned into cancellation of the run, and what stopped jobs left behind swept up.

use tokio::sync::watch;

use crate::exec::Cancel;

/// The first SIGINT or SIGTERM stops the jobs gracefully; a second SIGINT kills them at once.
/// SIGHUP is ignored under cron (no terminal to lose); on a terminal it stops the run like
/// SIGTERM.
pub(super) fn spawn_signal_handler(tx: watch::Sender<Cancel>, ignore_hangup: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if !ignore_hangup && *tx.borrow() == Cancel::None && tx.send(Cancel::Graceful(crate::sys::SIGHUP)).is_err() {
                        break;
                    }
                }
                _ = int.recv() => {
                    let now = *tx.borrow();
                    let next = if now == Cancel::None { Cancel::Graceful(crate::sys::SIGINT) } else { Cancel::Hard };
                    if tx.send(next).is_err() { break; }
                }
                _ = term.recv() => {
                    if *tx.borrow() == Cancel::None && tx.send(Cancel::Graceful(crate::sys::SIGTERM)).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Stops what stopped jobs left behind outside their process groups: our reparented
/// children, except the supervisors of background jobs.
pub fn sweep_orphans() {
    let me = std::process::id();
    let my_group = crate::sys::process_group_of(me);
    // Killing an orphan reparents its children to us in turn: a few rounds catch them.
    for _ in 0..5 {
        let orphans: Vec<u32> = crate::sys::children_of(me)
            .into_iter()
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                !cmdline.split(|b| *b == 0).any(|arg| arg == b"__supervise")
            })
            .collect();
        if orphans.is_empty() {
            return;
        }
        for &pid in &orphans {
            // Its whole group: a detached process usually leads one (setsid).
            if let Some(g) = crate::sys::process_group_of(pid)
                && Some(g) != my_group
            {
                let _ = crate::sys::killpg(g, crate::sys::SIGTERM);
            }
            let _ = crate::sys::kill(pid, crate::sys::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < deadline
            && orphans.iter().any(|&p| !crate::sys::process_gone(p))
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for &pid in &orphans {
            if !crate::sys::process_gone(pid) {
                if let Some(g) = crate::sys::process_group_of(pid)
                    && Some(g) != my_group
                {
                    let _ = crate::sys::killpg(g, crate::sys::SIGKILL);
                }
                let _ = crate::sys::kill(pid, crate::sys::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
