//! What /proc tells of a process: its start time, state, parent and group, and the boot it
//! belongs to.

/// Start time of a process in clock ticks since boot, to tell it from a later one with the
/// same pid.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process is a zombie or gone.
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
            matches!(state.as_deref(), Some("Z") | Some("X"))
        }
        Err(_) => true,
    }
}

/// This process's PID namespace, as /proc names it (`pid:[4026531836]`): pids of another
/// namespace mean nothing here.
pub fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Our child processes (from /proc), for sweeping orphans that were reparented to us.
pub fn children_of(pid: u32) -> Vec<u32> {
    live_processes()
        .filter(|&(_, ppid, _)| ppid == pid)
        .map(|(p, _, _)| p)
        .collect()
}

/// Whether a process group has a member that is not a zombie (an init that does not reap
/// leaves zombies in a group whose processes have all ended).
pub fn group_has_live_member(pgid: u32) -> bool {
    live_processes().any(|(_, _, group)| group == pgid)
}

/// Whether a live process has one of these command names (/proc/PID/comm).
pub fn process_named(names: &[&str]) -> bool {
    live_processes().any(|(p, _, _)| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .is_ok_and(|c| names.contains(&c.trim_end()))
    })
}

/// Every process that is not a zombie, as (pid, parent, process group), from /proc.
fn live_processes() -> impl Iterator<Item = (u32, u32, u32)> {
    let dir = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    dir.filter_map(|e| {
        let p = e.file_name().to_str()?.parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = f.next()?;
        let ppid = f.next()?.parse().ok()?;
        let pgrp = f.next()?.parse().ok()?;
        (state != "Z" && state != "X").then_some((p, ppid, pgrp))
    })
}

/// The process group of a process (field 5 of /proc/PID/stat).
pub fn process_group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}
