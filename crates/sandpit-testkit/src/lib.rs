//! Test-only helpers shared by sandpit's crates (a dev-dependency, never shipped).
//!
//! - [`postgres_url`]: the URL of a fresh, empty PostgreSQL database, a new one per call, so
//!   tests never share a database. The server is the one named by `SANDPIT_TEST_PG_URL`
//!   (`scripts/pg-test-server` starts one for a whole test run), or else a throwaway server
//!   this test process starts on first use and that dies with it.
//! - [`sqlite_url`]: a SQLite database file inside a test's temporary directory.

use std::os::fd::IntoRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::{Uid, User};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

/// An admin URL (superuser, maintenance database) of a running server to create test
/// databases on, e.g. `postgres://postgres@127.0.0.1:5433/postgres`.
pub const PG_URL_ENV: &str = "SANDPIT_TEST_PG_URL";

const NOT_INSTALLED: &str = "PostgreSQL is not installed: run scripts/test (it installs it) or \
                             apt-get install -y postgresql";

/// How long a throwaway server may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// `sqlite://{dir}/sandpit.db?mode=rwc`: a database file created on first connect inside
/// `dir` (usually a test's `tempfile::TempDir`, which removes it).
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/sandpit.db?mode=rwc", dir.display())
}

/// Creates an empty database `t_<uuid>` and returns its URL (same server, user and options
/// as the admin URL). Each call makes a new database; nothing is dropped afterwards (the
/// server is thrown away at the end of the run).
///
/// # Panics
/// When no server can be reached or started (PostgreSQL not installed, start-up failure):
/// a test that needs PostgreSQL must not silently pass without it.
pub async fn postgres_url() -> String {
    let admin = admin_url().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server {admin}: {e}"));
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {name} on {admin}: {e}"));
    // Closing politely is a nicety; the database exists either way.
    let _ = conn.close().await;
    let mut url =
        url::Url::parse(admin).unwrap_or_else(|e| panic!("{PG_URL_ENV}={admin} is not a URL: {e}"));
    url.set_path(&name);
    url.into()
}

/// The test PostgreSQL server's own URL (a superuser): `SANDPIT_TEST_PG_URL`, or a server
/// started once for this process. For tests that make roles and databases of their own.
pub async fn admin_url() -> &'static str {
    // A process-wide singleton on purpose: one server per test process, shared by its tests.
    static ADMIN_URL: OnceCell<String> = OnceCell::const_new();
    ADMIN_URL
        .get_or_init(|| async {
            match std::env::var(PG_URL_ENV) {
                Ok(url) if !url.is_empty() => url,
                _ => start_throwaway_server().await,
            }
        })
        .await
}

/// Starts a PostgreSQL server private to this process: `initdb` into a temporary
/// directory, then `postgres` on a free port. The server gets SIGKILL when this process
/// exits (see [`spawn_tied_to_process`]) and a janitor removes its directory then (see
/// [`remove_after_exit`]); Rust runs no destructors for statics, so nothing else would.
/// The test servers' client authentication (scripts/pg-test-server writes the same).
const PG_HBA: &str = "local all postgres trust\n\
                      host all postgres 127.0.0.1/32 trust\n\
                      local all all scram-sha-256\n\
                      host all all 127.0.0.1/32 scram-sha-256\n";

async fn start_throwaway_server() -> String {
    let bindir = postgres_bindir();
    let owner = server_owner();
    let dir = tempfile::Builder::new()
        .prefix("sandpit-testkit-pg.")
        .tempdir()
        .expect("create a temporary directory for PostgreSQL")
        .keep();
    remove_after_exit(&dir);
    let data = dir.join("data");
    let sockets = dir.join("sockets");
    std::fs::create_dir(&sockets).expect("create the PostgreSQL socket directory");
    if let Some(owner) = &owner {
        for path in [&dir, &sockets] {
            std::os::unix::fs::chown(path, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
                .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), owner.name));
        }
    }

    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
        .args(["--auth=trust", "--no-sync", "-U", "postgres"])
        .args(["--encoding=UTF8", "--locale=C", "-D"])
        .arg(&data);
    server_command(&mut initdb, &dir, owner.as_ref());
    let out = tokio::task::spawn_blocking(move || initdb.output())
        .await
        .expect("initdb task")
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // Its superuser is trusted; any other role (the per-user databases' tests make some)
    // signs in with its password, as on a real server.
    std::fs::write(data.join("pg_hba.conf"), PG_HBA).expect("write pg_hba.conf");

    // A port found free can be taken before the server binds it (other test processes are
    // doing the same): then try another.
    for _ in 0..5 {
        let port = free_port();
        let log_path = dir.join(format!("postgres-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create the PostgreSQL log file");
        let mut postgres = Command::new(bindir.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(&sockets)
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Durability is worthless for a throwaway server; speed is not.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "synchronous_commit=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file handle"))
            .stderr(log);
        server_command(&mut postgres, &dir, owner.as_ref());
        let child = spawn_tied_to_process(postgres)
            .unwrap_or_else(|e| panic!("start {}: {e}", bindir.join("postgres").display()));
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        if wait_until_ready(&url, child, &data, &log_path).await {
            return url;
        }
    }
    panic!("PostgreSQL could not bind a free port after 5 attempts");
}

/// Polls until the server accepts connections. False when it lost the race for its port.
async fn wait_until_ready(url: &str, mut child: Child, data: &Path, log_path: &Path) -> bool {
    let deadline = Instant::now() + START_DEADLINE;
    let log = || std::fs::read_to_string(log_path).unwrap_or_default();
    loop {
        if let Some(status) = child.try_wait().expect("check on the PostgreSQL process") {
            let log = log();
            if log.contains("Address already in use") {
                return false;
            }
            panic!("PostgreSQL exited ({status}) while starting:\n{log}");
        }
        match PgConnection::connect(url).await {
            Ok(mut conn) => {
                // Make sure this is our server and not one that won the race for the port.
                let dir: Result<String, _> = sqlx::query_scalar("SHOW data_directory")
                    .fetch_one(&mut conn)
                    .await;
                let _ = conn.close().await;
                match dir {
                    Ok(dir) if Path::new(&dir) == data => return true,
                    Ok(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return false;
                    }
                    Err(e) => panic!("query the test PostgreSQL server at {url}: {e}"),
                }
            }
            Err(e) if Instant::now() > deadline => panic!(
                "PostgreSQL at {url} did not accept connections within {} s: {e}\nserver log:\n{}",
                START_DEADLINE.as_secs(),
                log(),
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// PostgreSQL refuses to run as root: as root, run it as `postgres` (or `nobody`).
fn server_owner() -> Option<User> {
    if !Uid::effective().is_root() {
        return None;
    }
    let owner = ["postgres", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten())
        .expect("PostgreSQL cannot run as root and neither user `postgres` nor `nobody` exists");
    Some(owner)
}

/// Common set-up of `initdb` and `postgres`: run in `dir` (the caller's working directory
/// may be unreadable to `owner`), C locale, as `owner` if given.
fn server_command(cmd: &mut Command, dir: &Path, owner: Option<&User>) {
    cmd.current_dir(dir).env("LC_ALL", "C");
    if let Some(owner) = owner {
        cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
}

/// Spawns `cmd` so that the kernel sends it SIGKILL when this process exits.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process,
/// so the spawn happens on a dedicated thread that lives (blocked) until the process ends.
fn spawn_tied_to_process(mut cmd: Command) -> std::io::Result<Child> {
    type Job = Box<dyn FnOnce() + Send>;
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let jobs = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("testkit-pg-spawner".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
                // Unreachable while the static sender lives, but this thread must never end.
                loop {
                    std::thread::park();
                }
            })
            .expect("start the thread that spawns PostgreSQL");
        jobs
    });

    let parent = std::process::id();
    #[expect(
        unsafe_code,
        reason = "pre_exec is the only way to run prctl(PR_SET_PDEATHSIG) in the child"
    )]
    // SAFETY: the closure runs in the forked child before exec. It only makes the
    // async-signal-safe system calls prctl(2) and getppid(2), allocates nothing (nix errors
    // convert to io::Error without allocating), and touches no locks or shared state.
    // std runs it after switching to `uid`/`gid`, which matters: a credential change clears
    // the parent-death signal.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // If the test process died before prctl took effect, no signal will come.
            if nix::unistd::getppid().as_raw().unsigned_abs() != parent {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        });
    }

    let (reply, answer) = mpsc::sync_channel(1);
    jobs.send(Box::new(move || {
        let _ = reply.send(cmd.spawn());
    }))
    .expect("the PostgreSQL spawner thread is gone");
    answer.recv().expect("the PostgreSQL spawner thread died")
}

/// Starts a janitor that removes `dir` after this process exits.
///
/// It waits for end-of-file on a pipe whose write end this process keeps open until it
/// exits, however it exits. It runs in its own process group so that a Ctrl-C or the test
/// runner's kill of the test's group does not take it down before it has cleaned up, and
/// holds none of the test's output pipes (a test runner would wait for those).
fn remove_after_exit(dir: &Path) {
    const SCRIPT: &str = r#"
        while read -r _; do :; done
        # The server got SIGKILL when we got EOF; retry while its processes wind down.
        i=0
        while [ -e "$1" ] && [ "$i" -lt 100 ]; do
            rm -rf "$1" 2>/dev/null
            [ -e "$1" ] && sleep 0.1
            i=$((i + 1))
        done
    "#;
    #[expect(
        clippy::zombie_processes,
        reason = "the janitor outlives this process by design; it is never ours to reap"
    )]
    let mut janitor = Command::new("/bin/sh")
        .args(["-c", SCRIPT, "sandpit-testkit-janitor"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the janitor of the PostgreSQL directory");
    // Never closed on purpose: it closes when this process exits, which wakes the janitor.
    // (It is close-on-exec, so other children do not inherit it.)
    let _fd = janitor
        .stdin
        .take()
        .expect("janitor stdin is piped")
        .into_raw_fd();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free TCP port")
        .port()
}

/// The directory holding `initdb` and `postgres`: `pg_config --bindir`, else the newest
/// Debian `/usr/lib/postgresql/<major>/bin`, else `PATH`.
fn postgres_bindir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();

    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = pg_config.filter(|dir| has_server(dir)) {
        return dir;
    }

    let newest_debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let major: u32 = name.to_str()?.split('.').next()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .max();
    if let Some((_, dir)) = newest_debian {
        return dir;
    }

    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| has_server(dir)))
        .expect(NOT_INSTALLED)
}

/// The sandbox agent for tests of crates other than `sandpit-sandbox` (whose tests get it from
/// `CARGO_BIN_EXE_sandpit-agent`): the `sandpit-agent` binary next to this test's build output,
/// built with cargo if it is not there yet.
pub fn agent_argv() -> Vec<String> {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    let path = AGENT.get_or_init(|| {
        // Test binaries live in target/<profile>/deps/; binaries in target/<profile>/.
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable is in target/<profile>/deps");
        let agent = dir.join("sandpit-agent");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        // Older than this test binary: the sandbox crate may have changed since it was built
        // (building a test target does not rebuild another crate's binary), so let cargo decide.
        let stale = match (modified(&agent), modified(&exe)) {
            (Some(agent_time), Some(exe_time)) => agent_time < exe_time,
            _ => true,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "sandpit-sandbox", "--bin", "sandpit-agent"])
                .status()
                .expect("running cargo to build sandpit-agent");
            assert!(status.success(), "building sandpit-agent failed");
            // Up to date now, even if cargo had nothing to do: later test processes skip it.
            if let Ok(file) = std::fs::File::options().append(true).open(&agent) {
                let _ = file.set_modified(std::time::SystemTime::now());
            }
        }
        agent
    });
    vec![path.to_string_lossy().into_owned(), "agent".into()]
}

/// Where the tests find the docker environment's base images: `SANDPIT_TEST_IMAGES_DIR`, else
/// `/var/cache/sandpit-images` (where `scripts/test` builds them once per machine). A test
/// that needs them fails, saying how to make them, rather than passing without them.
pub fn images_dir() -> PathBuf {
    let dir = std::env::var_os("SANDPIT_TEST_IMAGES_DIR")
        .map_or_else(|| PathBuf::from("/var/cache/sandpit-images"), PathBuf::from);
    assert!(
        dir.join("current").is_dir(),
        "no base images in {}: scripts/test builds them, or run \
         `sandpit images build --dir {}` (needs root, debootstrap and podman)",
        dir.display(),
        dir.display()
    );
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_url_names_a_file_in_the_directory() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/x")),
            "sqlite:///tmp/x/sandpit.db?mode=rwc"
        );
    }
}
