//! Id maps for a box's container engine. A container with `USER 1000` needs more than the
//! box's one uid: rootless Podman asks the set-uid `newuidmap`/`newgidmap` to map a range of
//! subordinate ids into its user namespace. Set-uid programs do not work under
//! `no_new_privs`, so in a box those two names are this binary, and they ask the agent — PID 1
//! of the box, with the privilege to write id maps — over a socket. The agent writes a map only
//! for a process of the box's user, and only of the box's own ids: its uid (as one id) and the
//! range of subordinate ids the backend gave this box, which no other box has.

use std::io::{self, BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::spec::containers::IDMAP_SOCKET;

/// What a box may map: its own id and its subordinate range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub uid: u32,
    pub gid: u32,
    pub sub_start: u32,
    pub sub_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Uid,
    Gid,
}

/// One request: write `map` (inside, outside, count) as `pid`'s uid or gid map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRequest {
    pub kind: Kind,
    pub pid: u32,
    pub map: Vec<[u32; 3]>,
}

/// The kernel's limit on lines in an id map.
const MAX_LINES: usize = 340;
/// How long a connection may take to send its request.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks a request against the grant and the target's identity (`owner`: its real uid or
/// gid, from `/proc/PID/status`); returns the text to write into the map file.
pub fn check(request: &MapRequest, grant: &Grant, owner: u32) -> Result<String, String> {
    let own = match request.kind {
        Kind::Uid => grant.uid,
        Kind::Gid => grant.gid,
    };
    if owner != own {
        return Err(format!("process {} is not this box's user's", request.pid));
    }
    if request.map.is_empty() || request.map.len() > MAX_LINES {
        return Err("a map has 1 to 340 lines".into());
    }
    let sub = u64::from(grant.sub_start)..u64::from(grant.sub_start) + u64::from(grant.sub_count);
    let mut inside: Vec<(u64, u64)> = Vec::new();
    let mut outside: Vec<(u64, u64)> = Vec::new();
    let mut text = String::new();
    for &[first_in, first_out, count] in &request.map {
        if count == 0 {
            return Err("a map line counts at least one id".into());
        }
        let (i, o, n) = (u64::from(first_in), u64::from(first_out), u64::from(count));
        let own_id = o == u64::from(own) && n == 1;
        let in_sub = o >= sub.start && o + n <= sub.end;
        if !own_id && !in_sub {
            return Err(format!(
                "ids {o}..{} are not this box's (its own {own}, or {}..{})",
                o + n,
                sub.start,
                sub.end
            ));
        }
        if i + n > 1 << 32 {
            return Err("inside ids end past 2^32".into());
        }
        let overlaps =
            |ranges: &[(u64, u64)], a: u64| ranges.iter().any(|&(s, e)| a < e && s < a + n);
        if overlaps(&inside, i) || overlaps(&outside, o) {
            return Err("map lines overlap".into());
        }
        inside.push((i, i + n));
        outside.push((o, o + n));
        text.push_str(&format!("{first_in} {first_out} {count}\n"));
    }
    Ok(text)
}

/// The real uid and gid of a process, from its `status` file.
pub fn owner_of(status: &str) -> Option<(u32, u32)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

/// Handles one request from a box process: read a line, check it, write the map, answer.
pub fn answer(line: &str, grant: &Grant, proc: &Path) -> Result<(), String> {
    let request: MapRequest =
        serde_json::from_str(line).map_err(|e| format!("a bad request: {e}"))?;
    let dir = proc.join(request.pid.to_string());
    let status = std::fs::read_to_string(dir.join("status"))
        .map_err(|_| format!("no process {}", request.pid))?;
    let (uid, gid) = owner_of(&status).ok_or("an unreadable process status")?;
    let owner = match request.kind {
        Kind::Uid => uid,
        Kind::Gid => gid,
    };
    let text = check(&request, grant, owner)?;
    let file = match request.kind {
        Kind::Uid => "uid_map",
        Kind::Gid => "gid_map",
    };
    // One write, as the kernel wants it; it refuses a second map for the same namespace.
    std::fs::write(dir.join(file), text).map_err(|e| format!("writing {file}: {e}"))
}

/// `newuidmap` / `newgidmap` in a box: `PID INSIDE OUTSIDE COUNT ...`, as shadow's tools take
/// them. Which one is told by the program's name.
pub fn helper_main(kind: Kind, args: &[String]) -> std::process::ExitCode {
    let name = match kind {
        Kind::Uid => "newuidmap",
        Kind::Gid => "newgidmap",
    };
    let fail = |message: &str| {
        eprintln!("{name}: {message}");
        std::process::ExitCode::FAILURE
    };
    let numbers: Result<Vec<u32>, _> = args.iter().map(|a| a.parse::<u32>()).collect();
    let Ok(numbers) = numbers else {
        return fail("usage: PID INSIDE OUTSIDE COUNT [INSIDE OUTSIDE COUNT ...]");
    };
    let Some((&pid, triples)) = numbers.split_first() else {
        return fail("usage: PID INSIDE OUTSIDE COUNT [INSIDE OUTSIDE COUNT ...]");
    };
    if triples.is_empty() || triples.len() % 3 != 0 {
        return fail("usage: PID INSIDE OUTSIDE COUNT [INSIDE OUTSIDE COUNT ...]");
    }
    let request = MapRequest {
        kind,
        pid,
        map: triples.chunks(3).map(|c| [c[0], c[1], c[2]]).collect(),
    };
    match ask(&request) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn ask(request: &MapRequest) -> Result<(), String> {
    let mut stream = std::os::unix::net::UnixStream::connect(IDMAP_SOCKET)
        .map_err(|e| format!("the box's agent is not answering at {IDMAP_SOCKET}: {e}"))?;
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    io::BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    match answer.trim_end() {
        "ok" => Ok(()),
        other => Err(other.to_owned()),
    }
}

/// Serves id-map requests on the box's socket until the agent ends. Only the box's user may
/// connect (checked by the peer's credentials); each connection carries one request.
pub async fn serve(listener: tokio::net::UnixListener, grant: Grant) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::task::spawn_local(async move {
            let peer = stream.peer_cred().map(|c| c.uid()).ok();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(4096));
            // A connection that says nothing is dropped: PID 1 keeps no idle sockets for a
            // process that only wants to hold them.
            let read = tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await;
            let reply = if peer != Some(grant.uid) {
                "refused: not this box's user".to_owned()
            } else if !matches!(read, Ok(Ok(_))) {
                "refused: no request in time".to_owned()
            } else {
                match answer(&line, &grant, Path::new("/proc")) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("refused: {e}"),
                }
            };
            let _ = write.write_all(format!("{reply}\n").as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRANT: Grant = Grant {
        uid: 5000,
        gid: 5000,
        sub_start: 100_000,
        sub_count: 65_536,
    };

    fn req(kind: Kind, map: &[[u32; 3]]) -> MapRequest {
        MapRequest {
            kind,
            pid: 7,
            map: map.to_vec(),
        }
    }

    #[test]
    fn the_box_may_map_its_own_id_and_its_range() {
        let text = check(
            &req(Kind::Uid, &[[0, 5000, 1], [1, 100_000, 65_536]]),
            &GRANT,
            5000,
        )
        .unwrap();
        assert_eq!(text, "0 5000 1\n1 100000 65536\n");
        // Part of the range is fine too.
        check(&req(Kind::Gid, &[[0, 100_010, 10]]), &GRANT, 5000).unwrap();
    }

    #[test]
    fn anything_else_is_refused() {
        let refused = |map: &[[u32; 3]], owner| check(&req(Kind::Uid, map), &GRANT, owner).is_err();
        // Root, another box's ids, past the range, overlapping lines, empty lines.
        assert!(refused(&[[0, 0, 1]], 5000));
        assert!(refused(&[[0, 5001, 1]], 5000));
        assert!(refused(&[[0, 5000, 2]], 5000));
        assert!(refused(&[[0, 100_000, 65_537]], 5000));
        assert!(refused(&[[0, 99_999, 2]], 5000));
        assert!(refused(&[[0, 5000, 1], [0, 100_000, 1]], 5000));
        assert!(refused(&[[0, 100_000, 10], [20, 100_005, 10]], 5000));
        assert!(refused(&[[0, 100_000, 0]], 5000));
        assert!(refused(&[], 5000));
        assert!(refused(&[[u32::MAX, 100_000, 2]], 5000));
        // A process of another user.
        assert!(refused(&[[0, 5000, 1]], 4999));
    }

    #[test]
    fn owners_are_read_from_the_status_file() {
        let status = "Name:\tpodman\nUid:\t5000\t5000\t5000\t5000\nGid:\t5001\t5001\t5001\t5001\n";
        assert_eq!(owner_of(status), Some((5000, 5001)));
        assert_eq!(owner_of("Name:\tx\n"), None);
    }

    #[test]
    fn requests_travel_as_json_lines() {
        let request = req(Kind::Gid, &[[0, 5000, 1]]);
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(line, r#"{"kind":"gid","pid":7,"map":[[0,5000,1]]}"#);
        assert_eq!(serde_json::from_str::<MapRequest>(&line).unwrap(), request);
    }
}
