//! Crash safety of the real `sandpit serve` (needs root, as CI is: sandboxes use namespaces,
//! cgroups and loop devices). Four writers, each on its own session, keep writing files and
//! starting runs (synchronous, and asynchronous ones: durable jobs) while the server is
//! SIGKILLed three times and restarted on the same data directory. Afterwards every
//! acknowledged write must read back (or a newer write of the same writer to the same path),
//! every accepted asynchronous run must have completed exactly once with its output (and an
//! agent job the first kill interrupts, against a fake model), every
//! session must still be live, and nothing of the killed instances may be left: no cgroup,
//! process, loop device or mount.
//!
//! Other tests run in parallel with servers of their own, so every orphan check is scoped to
//! the killed servers' pids and this test's data directory.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is how a test step fails, loudly"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

const WRITERS: usize = 4;
const KILLS: usize = 3;
/// Each writer cycles over this many paths, so most writes replace an earlier one.
const PATHS_PER_WRITER: u64 = 5;
/// Acknowledged writes after which each instance is killed. The middle kill lands as soon as
/// the instance answers at all, while the other sessions' sandboxes are still starting (their
/// workspaces' loop devices being attached); the others land in steady traffic.
const KILL_AFTER: [u64; KILLS] = [150, 1, 150];
/// Acknowledged writes the last instance must take before the check.
const ACKED_LAST: u64 = 150;
/// A writer starts a run every this many writes.
const RUN_EVERY: u64 = 6;
/// Runs that must succeed overall.
const MIN_RUNS_OK: u64 = 4;
/// Hang guard for any single wait (start-up, progress, clean-up); never a speed target.
const HANG_GUARD: Duration = Duration::from_secs(120);

mod common;

use common::Server;

/// Starts instance `n` on `root/data`.
async fn start(root: &Path, n: usize, model: &str) -> Server {
    let env = [
        ("SANDPIT_DATA_DIR", root.join("data").display().to_string()),
        ("SANDPIT_RATE_LIMIT__API_PER_MINUTE", "1000000".into()),
        ("SANDPIT_RATE_LIMIT__AUTH_PER_MINUTE", "10000".into()),
        ("SANDPIT_SESSIONS__MAX_PER_USER", WRITERS.to_string()),
        ("SANDPIT_RUNS__WARM_POOL", "1".into()),
        // A killed server's jobs run again once their lease expires: soon, here.
        ("SANDPIT_JOBS__LEASE_SECONDS", "3".into()),
        // Agent jobs ask the fake model; it may take its time (the kill comes first).
        ("SANDPIT_LLM__PROVIDERS__MAIN__KIND", "openai".into()),
        ("SANDPIT_LLM__PROVIDERS__MAIN__BASE_URL", model.into()),
        ("SANDPIT_LLM__PROVIDERS__MAIN__MODEL", "fake".into()),
        ("SANDPIT_LLM__PROVIDERS__MAIN__TIMEOUT_MS", "120000".into()),
        ("SANDPIT_LLM__ROUTES__FALLBACK", "main".into()),
    ];
    Server::start(root, root.join(format!("server-{n}.log")), &env).await
}

/// What every writer sees: where the server is now, and when to stop.
struct Shared {
    /// The current instance's number and base URL.
    target: RwLock<(usize, String)>,
    stop: AtomicBool,
    /// Acknowledged writes per instance.
    acked: Vec<AtomicU64>,
}

impl Shared {
    fn target(&self) -> (usize, String) {
        self.target.read().unwrap().clone()
    }
}

/// What one writer did.
#[derive(Default)]
struct WriterLog {
    /// Every sequence number sent for each path (acknowledged or not: an unanswered write may
    /// still have landed).
    attempted: BTreeMap<String, BTreeSet<u64>>,
    /// Each acknowledged write, as (path, seq).
    acked: Vec<(String, u64)>,
    runs_ok: u64,
    /// Asynchronous runs (durable jobs) accepted with 202: (id, what they print).
    async_runs: Vec<(String, String)>,
    /// Runs answered 2xx whose output was not what the program prints.
    runs_wrong: Vec<String>,
    /// Why requests failed, with counts (connection errors while the server is down are
    /// expected).
    failures: BTreeMap<String, u64>,
}

/// The file a writer writes: its identity and a sequence number in the first line, then
/// padding derived from them, so a torn or mixed-up file cannot pass as any write.
fn content(writer: usize, path: &str, seq: u64) -> Vec<u8> {
    let mut text = format!("sandpit crash test: writer {writer} path {path} seq {seq}\n");
    for i in 0..200 {
        text.push_str(&format!("{writer}:{seq}:{i} "));
    }
    text.push('\n');
    text.into_bytes()
}

/// The sequence number of a file written by `writer` to `path`, if it is exactly one of its
/// writes.
fn parse_content(writer: usize, path: &str, bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let first = text.lines().next()?;
    let prefix = format!("sandpit crash test: writer {writer} path {path} seq ");
    let seq: u64 = first.strip_prefix(&prefix)?.parse().ok()?;
    (content(writer, path, seq) == bytes).then_some(seq)
}

fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connect error"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "request error (connection lost)"
    }
}

async fn writer(
    w: usize,
    session: String,
    token: String,
    client: reqwest::Client,
    shared: Arc<Shared>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        seq += 1;
        let (instance, base) = shared.target();
        let path = format!("w{w}/f{}.txt", seq % PATHS_PER_WRITER);
        log.attempted.entry(path.clone()).or_default().insert(seq);
        let sent = client
            .put(format!("{base}/api/v1/sessions/{session}/files/{path}"))
            .bearer_auth(&token)
            .body(content(w, &path, seq))
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => {
                log.acked.push((path, seq));
                shared.acked[instance].fetch_add(1, Ordering::SeqCst);
            }
            Ok(res) => {
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                *log.failures
                    .entry(format!("PUT {status}: {body}"))
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                *log.failures.entry(failure_kind(&e).into()).or_default() += 1;
                // The server is down: wait for the next one's address.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        if seq.is_multiple_of(RUN_EVERY) {
            let said = format!("run {w} {seq}");
            // Every other run is asynchronous: a job that must survive the kills.
            let wait = !seq.is_multiple_of(2 * RUN_EVERY);
            let sent = client
                .post(format!("{base}/api/v1/runs?wait={wait}"))
                .bearer_auth(&token)
                .json(&json!({
                    "runtime": "bash",
                    "files": [{"name": "main.sh", "content": format!("echo {said}")}],
                }))
                .send()
                .await;
            match sent {
                Ok(res) if res.status() == reqwest::StatusCode::ACCEPTED => {
                    let body: Value = res.json().await.unwrap_or_default();
                    match body["id"].as_str() {
                        Some(id) => log.async_runs.push((id.to_owned(), said)),
                        None => log.runs_wrong.push(body.to_string()),
                    }
                }
                Ok(res) if res.status().is_success() => {
                    let body: Value = res.json().await.unwrap_or_default();
                    if body["run"]["status"] == "ok" && body["run"]["stdout"] == format!("{said}\n")
                    {
                        log.runs_ok += 1;
                    } else {
                        log.runs_wrong.push(body.to_string());
                    }
                }
                Ok(res) => {
                    let status = res.status();
                    let body = res.text().await.unwrap_or_default();
                    *log.failures
                        .entry(format!("run {status}: {body}"))
                        .or_default() += 1;
                }
                Err(e) => {
                    *log.failures
                        .entry(format!("run {}", failure_kind(&e)))
                        .or_default() += 1;
                }
            }
        }
    }
    log
}

/// A fake OpenAI-compatible model: chat completions over HTTP/1.1, written by hand since this
/// crate has no HTTP server (one request per connection, `Connection: close`). The first
/// request is held unanswered — the server that asked is killed mid-attempt — and every later
/// one gets a research answer.
struct FakeModel {
    base: String,
    requests: Arc<AtomicU64>,
}

impl FakeModel {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // The head, then as many body bytes as it announces.
                    let complete = |r: &[u8]| {
                        let text = String::from_utf8_lossy(r);
                        let Some(head_end) = text.find("\r\n\r\n") else {
                            return false;
                        };
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        r.len() >= head_end + 4 + length
                    };
                    while !complete(&request) {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let answer = r#"{"summary": "It survived.", "findings": []}"#;
                    let body = json!({
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": "fake",
                        "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": answer}}],
                    })
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { base, requests }
    }
}

/// Waits until `instance` has acknowledged `count` writes; fails if the server dies by itself
/// or makes no progress within the hang guard.
async fn wait_for_writes(shared: &Shared, server: &mut Server, instance: usize, count: u64) {
    let deadline = Instant::now() + HANG_GUARD;
    while shared.acked[instance].load(Ordering::SeqCst) < count {
        if let Some(status) = server.exited() {
            panic!(
                "server {instance} exited by itself ({status}):\n{}",
                server.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "server {instance} acknowledged only {} writes:\n{}",
            shared.acked[instance].load(Ordering::SeqCst),
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn call(req: reqwest::RequestBuilder, expect: reqwest::StatusCode) -> Value {
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(status, expect, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_and_nothing_is_left_behind() {
    let began = Instant::now();
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    let client = reqwest::Client::builder()
        // Hang guards only: a request in flight when the server is killed fails at once.
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let model = FakeModel::start().await;
    let mut server = start(dir.path(), 0, &model.base).await;
    let signed = call(
        client.post(server.url("/api/v1/auth/signup")).json(&json!({
            "username": "crasher",
            "password": "correct horse battery",
        })),
        reqwest::StatusCode::CREATED,
    )
    .await;
    let token = signed["token"].as_str().unwrap().to_owned();
    let runtimes = call(
        client
            .get(server.url("/api/v1/runtimes"))
            .bearer_auth(&token),
        reqwest::StatusCode::OK,
    )
    .await;
    assert!(
        runtimes["runtimes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "bash"),
        "{runtimes}"
    );
    let mut sessions = Vec::new();
    for _ in 0..WRITERS {
        let created = call(
            client
                .post(server.url("/api/v1/sessions"))
                .bearer_auth(&token)
                .json(&json!({})),
            reqwest::StatusCode::CREATED,
        )
        .await;
        sessions.push(created["id"].as_str().unwrap().to_owned());
    }

    // An agent job whose first attempt the first kill interrupts (the model holds its answer).
    let project = call(
        client
            .post(server.url("/api/v1/projects"))
            .bearer_auth(&token)
            .json(&json!({"name": "crashed"})),
        reqwest::StatusCode::CREATED,
    )
    .await;
    let agent_job = call(
        client
            .post(server.url(&format!(
                "/api/v1/projects/{}/jobs",
                project["id"].as_str().unwrap()
            )))
            .bearer_auth(&token)
            .json(&json!({"kind": "research", "input": {"prompt": "survive a kill"}})),
        reqwest::StatusCode::ACCEPTED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let shared = Arc::new(Shared {
        target: RwLock::new((0, server.base.clone())),
        stop: AtomicBool::new(false),
        acked: (0..=KILLS).map(|_| AtomicU64::new(0)).collect(),
    });
    let writers: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(w, session)| {
            tokio::spawn(writer(
                w,
                session.clone(),
                token.clone(),
                client.clone(),
                shared.clone(),
            ))
        })
        .collect();

    let mut killed = Vec::new();
    let mut exposure = Vec::new();
    let mut orphans = Vec::new();
    for (n, &after) in KILL_AFTER.iter().enumerate() {
        wait_for_writes(&shared, &mut server, n, after).await;
        if n == 0 {
            let deadline = Instant::now() + HANG_GUARD;
            while model.requests.load(Ordering::SeqCst) == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the agent job never asked the model"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // A different moment in the writers' traffic each time.
        tokio::time::sleep(Duration::from_millis(15 + 40 * n as u64)).await;
        // The orphan checks below look for these; make sure there is something to leave.
        let held = held_by(server.pid, &data_dir);
        assert!(
            held.cgroups > 0 && held.processes > 0 && held.loop_devices > 0,
            "server {n} holds nothing the orphan checks could miss: {held:?}"
        );
        exposure.push(held);
        server.kill();
        killed.push(server.pid);
        server = start(dir.path(), n + 1, &model.base).await;
        // Before the writers find it, the new server runs no session's sandbox: whatever of the
        // data directory is still attached or mounted now was left by a killed one.
        for found in settled_orphans(&killed, server.pid, &data_dir).await {
            orphans.push(format!("after restart {}: {found}", n + 1));
        }
        *shared.target.write().unwrap() = (n + 1, server.base.clone());
    }
    wait_for_writes(&shared, &mut server, KILLS, ACKED_LAST).await;
    shared.stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for handle in writers {
        logs.push(
            tokio::time::timeout(HANG_GUARD, handle)
                .await
                .expect("a writer hung")
                .unwrap(),
        );
    }

    // Sessions came back: all of them live (their sandboxes start on demand).
    let listed = call(
        client
            .get(server.url("/api/v1/sessions"))
            .bearer_auth(&token),
        reqwest::StatusCode::OK,
    )
    .await;
    for id in &sessions {
        let found = listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id.as_str());
        let status = found.map(|s| s["status"].clone());
        assert!(
            matches!(
                status.as_ref().and_then(Value::as_str),
                Some("running" | "suspended")
            ),
            "session {id} is not live after the restarts: {listed}"
        );
    }

    // Every accepted asynchronous run completes exactly once with its output, whichever
    // server ran it (one killed mid-run runs again after its lease): one result, one end.
    let mut async_wrong = Vec::new();
    // Those a kill interrupted, run again after their lease: timing decides how many.
    let mut async_rerun = 0;
    let accepted: Vec<&(String, String)> = logs.iter().flat_map(|l| &l.async_runs).collect();
    for (id, said) in &accepted {
        let deadline = Instant::now() + HANG_GUARD;
        let job = loop {
            let job = call(
                client
                    .get(server.url(&format!("/api/v1/jobs/{id}")))
                    .bearer_auth(&token),
                reqwest::StatusCode::OK,
            )
            .await;
            if matches!(
                job["state"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                break job;
            }
            assert!(Instant::now() < deadline, "job {id} never finished: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let events = client
            .get(server.url(&format!("/api/v1/jobs/{id}/events")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        async_rerun += usize::from(job["attempts"].as_u64().unwrap_or(0) > 1);
        let results = events.matches("event: result").count();
        let ends = events.matches("\"state\":\"completed\"").count();
        if job["state"] != "completed"
            || job["result"]["run"]["stdout"] != format!("{said}\n")
            || (results, ends) != (1, 1)
        {
            async_wrong.push(format!("{job} ({results} results, {ends} ends)"));
        }
    }

    // The agent job, interrupted mid-attempt by the first kill, completed exactly once.
    let deadline = Instant::now() + HANG_GUARD;
    let agent = loop {
        let job = call(
            client
                .get(server.url(&format!("/api/v1/jobs/{agent_job}")))
                .bearer_auth(&token),
            reqwest::StatusCode::OK,
        )
        .await;
        if matches!(
            job["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the agent job never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let agent_events = client
        .get(server.url(&format!("/api/v1/jobs/{agent_job}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(agent["state"], "completed", "{agent}\n{agent_events}");
    assert!(agent["attempts"].as_u64().unwrap() >= 2, "{agent}");
    assert_eq!(agent["result"]["output"]["summary"], "It survived.");
    assert_eq!(
        agent_events.matches("event: result").count(),
        1,
        "{agent_events}"
    );
    assert_eq!(
        agent_events.matches("\"state\":\"completed\"").count(),
        1,
        "{agent_events}"
    );
    assert!(agent_events.contains("lease_expired"), "{agent_events}");

    // Every acknowledged write reads back, or a newer write of the same writer to that path.
    let mut lost = Vec::new();
    let mut lost_writes = 0;
    let mut corrupt = Vec::new();
    for (w, log) in logs.iter().enumerate() {
        let mut newest_acked: HashMap<&str, u64> = HashMap::new();
        for (path, seq) in &log.acked {
            let newest = newest_acked.entry(path).or_default();
            *newest = (*newest).max(*seq);
        }
        for (path, attempted) in &log.attempted {
            let res = client
                .get(server.url(&format!("/api/v1/sessions/{}/files/{path}", sessions[w])))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let bytes = res.bytes().await.unwrap();
            let newest = newest_acked.get(path.as_str()).copied();
            let found = match status {
                reqwest::StatusCode::OK => match parse_content(w, path, &bytes) {
                    Some(seq) if attempted.contains(&seq) => Some(seq),
                    _ => {
                        corrupt.push(format!(
                            "writer {w} {path}: {:?}",
                            String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
                        ));
                        continue;
                    }
                },
                reqwest::StatusCode::NOT_FOUND => None,
                other => panic!(
                    "reading back {path}: {other} {}",
                    String::from_utf8_lossy(&bytes)
                ),
            };
            if let Some(newest) = newest
                && found.is_none_or(|seq| seq < newest)
            {
                let missing = log
                    .acked
                    .iter()
                    .filter(|(p, seq)| p == path && found.is_none_or(|f| *seq > f))
                    .count();
                lost_writes += missing;
                lost.push(format!(
                    "writer {w} {path}: acknowledged up to seq {newest}, found {found:?} \
                     ({missing} acknowledged writes missing)"
                ));
            }
        }
    }

    // Nothing of the killed instances is left beside what the last server uses.
    for found in settled_orphans(&killed, server.pid, &data_dir).await {
        orphans.push(format!("at the end: {found}"));
    }

    let acked: u64 = shared.acked.iter().map(|a| a.load(Ordering::SeqCst)).sum();
    let per_instance: Vec<u64> = shared
        .acked
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    let runs_ok: u64 = logs.iter().map(|l| l.runs_ok).sum();
    let runs_wrong: Vec<&String> = logs.iter().flat_map(|l| &l.runs_wrong).collect();
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for log in &logs {
        for (why, n) in &log.failures {
            *failures.entry(why).or_default() += n;
        }
    }
    println!(
        "crash test: acknowledged writes {acked} (per instance {per_instance:?}), kills {}, \
         lost {lost_writes}, corrupt {}, orphans {}, runs ok {runs_ok}, async runs \
         {} (run again after a kill {async_rerun}, wrong {}), duration {:.1} s",
        killed.len(),
        corrupt.len(),
        orphans.len(),
        accepted.len(),
        async_wrong.len(),
        began.elapsed().as_secs_f64()
    );
    println!("crash test: held by each server when it was killed {exposure:?}");
    println!("crash test: unacknowledged requests {failures:#?}");
    assert!(lost.is_empty(), "lost writes: {lost:#?}");
    assert!(corrupt.is_empty(), "corrupt files: {corrupt:#?}");
    assert!(orphans.is_empty(), "left behind: {orphans:#?}");
    assert!(
        runs_wrong.is_empty(),
        "runs with a wrong answer: {runs_wrong:#?}"
    );
    assert!(
        async_wrong.is_empty(),
        "asynchronous runs not completed exactly once: {async_wrong:#?}"
    );
    assert!(
        accepted.len() >= MIN_RUNS_OK as usize,
        "only {} asynchronous runs accepted",
        accepted.len()
    );
    // The run did what it claims: three kills, traffic acknowledged by every instance, runs.
    assert_eq!(killed.len(), KILLS);
    let wanted = KILL_AFTER.iter().chain([&ACKED_LAST]);
    assert!(per_instance.iter().zip(wanted).all(|(n, w)| n >= w));
    assert!(acked >= KILL_AFTER.iter().sum::<u64>() + ACKED_LAST);
    assert!(runs_ok >= MIN_RUNS_OK, "only {runs_ok} runs succeeded");
}

/// [`orphans`] once the count settles at zero, else what is still there after a while: the new
/// instance kills the old sandboxes at start-up, but the kernel frees a loop device shortly
/// after its last mount goes.
async fn settled_orphans(killed: &[u32], current: u32, data_dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = orphans(killed, current, data_dir);
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the killed instances `killed` left behind, with `current` the live server's pid: cgroups
/// and processes named after a killed pid, loop devices backed by files in `data_dir` that no
/// sandbox of the current server has mounted, and mounts that refer to `data_dir` or to such a
/// device, in any process's mount namespace.
fn orphans(killed: &[u32], current: u32, data_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let marker = |pid: u32| format!("sandpit-{pid}-");

    let mut dirs = Vec::new();
    cgroup_dirs(Path::new("/sys/fs/cgroup"), &mut dirs);
    for dir in &dirs {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        if killed.iter().any(|&pid| name.starts_with(&marker(pid))) {
            found.push(format!("cgroup {}", dir.display()));
        }
    }

    let in_instance = |cgroups: &str, pid: u32| cgroups.contains(&format!("/{}", marker(pid)));
    // Mount namespaces of the current server's sandboxes, and every namespace with one of its
    // processes (to read each namespace's mounts once).
    let mut current_ns = BTreeSet::new();
    let mut namespaces: BTreeMap<PathBuf, u32> = BTreeMap::new();
    for pid in proc_pids() {
        let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        if let Some(dead) = killed.iter().find(|&&k| in_instance(&cgroups, k)) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            found.push(format!(
                "process {pid} ({}) of killed server {dead}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if in_instance(&cgroups, current) {
            current_ns.insert(ns.clone());
        }
        namespaces.entry(ns).or_insert(pid);
    }

    let data = data_dir.to_string_lossy().into_owned();
    let ours = loop_devices_backed_in(&data);
    let mut mounted_by_current = BTreeSet::new();
    for (ns, pid) in &namespaces {
        let Ok(mountinfo) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        for line in mountinfo.lines() {
            let dev = line.split(' ').nth(2).unwrap_or_default();
            let loop_dev = ours.iter().find(|(_, d, _)| d == dev);
            if current_ns.contains(ns) {
                if let Some((name, _, _)) = loop_dev {
                    mounted_by_current.insert(name.clone());
                }
                continue;
            }
            if line.contains(&data) {
                found.push(format!("mount in {ns:?} (process {pid}): {line}"));
            } else if let Some((name, _, backing)) = loop_dev {
                found.push(format!(
                    "mount of {name} ({backing}) in {ns:?} (process {pid}): {line}"
                ));
            }
        }
    }
    for (name, _, backing) in &ours {
        if !mounted_by_current.contains(name) {
            found.push(format!("loop device {name} backed by {backing}"));
        }
    }
    found
}

/// What a live server holds: its sandbox cgroups, processes in them, and the loop devices of
/// the data directory (its sessions' workspaces).
#[derive(Debug)]
struct Held {
    cgroups: usize,
    processes: usize,
    loop_devices: usize,
}

fn held_by(pid: u32, data_dir: &Path) -> Held {
    let marker = format!("sandpit-{pid}-");
    let mut dirs = Vec::new();
    cgroup_dirs(Path::new("/sys/fs/cgroup"), &mut dirs);
    let cgroups = dirs
        .iter()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&marker))
        })
        .count();
    let processes = proc_pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cgroup"))
                .is_ok_and(|c| c.contains(&format!("/{marker}")))
        })
        .count();
    let loop_devices = loop_devices_backed_in(&data_dir.to_string_lossy()).len();
    Held {
        cgroups,
        processes,
        loop_devices,
    }
}

/// Every directory beneath `dir` (symbolic links, such as `cpu -> cpu,cpuacct`, not followed).
fn cgroup_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
            cgroup_dirs(&entry.path(), out);
        }
    }
}

fn proc_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Attached loop devices whose backing file lies in `dir`: (name, "major:minor", backing file).
fn loop_devices_backed_in(dir: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim().to_owned();
        if backing.starts_with(&format!("{dir}/")) {
            let dev = std::fs::read_to_string(entry.path().join("dev")).unwrap_or_default();
            found.push((name, dev.trim().to_owned(), backing));
        }
    }
    found
}
