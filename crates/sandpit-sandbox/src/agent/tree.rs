//! The agent's processes as `/proc` shows them, and ending them: in pod mode the agent is not
//! PID 1 of its own namespace, so `kill(-1)` would reach more than the box; and in either mode
//! a held process (a terminal's shell, [`crate::spec::Hold`]) and its jobs must outlive the
//! connection whose other processes are ended.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Rounds of killing a process tree before giving up on one that keeps growing.
const KILL_ROUNDS: u32 = 10_000;

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: i32,
    pub ppid: i32,
    /// Its session: a held process leads one (every spawn starts a session), and its jobs
    /// stay in it unless they leave.
    pub session: i32,
    /// Exited, waiting to be reaped: nothing left to kill.
    pub zombie: bool,
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp session …`, where `comm` may hold
/// anything, spaces and parentheses included, so the fields are found after its last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcEntry> {
    let (head, rest) = stat.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let session = fields.next()?.parse().ok()?;
    Some(ProcEntry {
        pid,
        ppid,
        session,
        zombie: matches!(state, "Z" | "X"),
    })
}

/// The live processes below `root` in `procs`, except those in one of the `kept` sessions.
pub fn descendants(root: i32, procs: &[ProcEntry], kept: &HashSet<i32>) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<&ProcEntry>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if child.pid == root {
                continue;
            }
            if !child.zombie && !kept.contains(&child.session) {
                found.push(child.pid);
            }
            queue.push(child.pid);
        }
    }
    found
}

/// Every process visible in `/proc`; processes gone while it is read are left out.
fn scan_proc() -> io::Result<Vec<ProcEntry>> {
    let mut procs = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(stat) = fs::read_to_string(format!("/proc/{name}/stat"))
            && let Some(p) = parse_stat(&stat)
        {
            procs.push(p);
        }
    }
    Ok(procs)
}

/// The live processes below `root` now, by parentage (zombies left out).
pub fn live_descendants(root: i32) -> io::Result<Vec<i32>> {
    Ok(descendants(root, &scan_proc()?, &HashSet::new()))
}

/// SIGKILLs every live process below the agent, except the `kept` sessions, until none is
/// left. A process may fork between the scan and its kill; its child then comes back to the
/// agent (PID 1 of a box, or a subreaper in a pod) and is found by the next round. `reap`:
/// collects exited children between rounds, so zombies do not pile up.
pub fn kill_descendants(kept: &HashSet<i32>, mut reap: impl FnMut()) -> io::Result<()> {
    let me = std::process::id() as i32;
    for _ in 0..KILL_ROUNDS {
        reap();
        let live = descendants(me, &scan_proc()?, kept);
        if live.is_empty() {
            return Ok(());
        }
        for pid in live {
            // ESRCH: gone meanwhile. EPERM cannot be: every descendant runs as the agent's uid
            // or the one it dropped to, under no_new_privs.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Killed processes take a moment to become zombies; the next scan would find them
        // still running.
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(io::Error::other(format!(
        "processes were still starting after {KILL_ROUNDS} rounds of killing"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        assert_eq!(
            parse_stat("42 (a) b (c)) S 7 42 40 0 -1"),
            Some(ProcEntry {
                pid: 42,
                ppid: 7,
                session: 40,
                zombie: false
            })
        );
        assert!(parse_stat("9 (x) Z 1 9 9").unwrap().zombie);
        assert_eq!(parse_stat("9 (x) Z 1 9"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_are_the_live_tree_below_the_root_but_the_kept_sessions() {
        let p = |pid, ppid, session, zombie| ProcEntry {
            pid,
            ppid,
            session,
            zombie,
        };
        let procs = [
            p(1, 0, 1, false),
            p(10, 1, 10, false),
            p(11, 10, 10, false),
            p(12, 11, 10, true),
            p(13, 12, 13, false),
            p(20, 1, 20, false),
            p(21, 20, 20, false),
            // A job of the held shell 20 orphaned to the root: still its session.
            p(22, 1, 20, false),
        ];
        let none = HashSet::new();
        let mut found = descendants(10, &procs, &none);
        found.sort();
        assert_eq!(found, vec![11, 13]);
        let mut all = descendants(1, &procs, &HashSet::from([20]));
        all.sort();
        assert_eq!(all, vec![10, 11, 13]);
        assert!(descendants(21, &procs, &none).is_empty());
    }
}
