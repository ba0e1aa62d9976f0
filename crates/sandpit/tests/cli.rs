//! The `sandpit` command as a user runs it: a real process with its own data directory.

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is how a test step fails, loudly"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

fn sandpit(dir: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandpit"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SANDPIT_DATA_DIR", dir.path().join("data"))
        .env("SANDPIT_LOG__FORMAT", "json")
        .current_dir(dir.path());
    cmd
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_and_default_config() {
    let dir = TempDir::new().unwrap();
    let out = sandpit(&dir).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("sandpit {}", env!("CARGO_PKG_VERSION"))
    );

    let out = sandpit(&dir).args(["config", "default"]).output().unwrap();
    assert!(out.status.success());
    let printed = text(&out.stdout);
    assert!(printed.contains("# "), "commented");
    // The printed file is a valid configuration the server accepts as it is.
    std::fs::write(dir.path().join("sandpit.toml"), &printed).unwrap();
    let out = sandpit(&dir)
        .args(["--config", "sandpit.toml", "config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["server"]["bind"], "127.0.0.1:8000");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let out = sandpit(&dir)
        .env("SANDPIT_SERVER__BIND", "not an address")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid configuration"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn migrate_then_bootstrap_an_admin() {
    let dir = TempDir::new().unwrap();
    let out = sandpit(&dir).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("data/sandpit.db").exists());

    let mut cmd = sandpit(&dir);
    cmd.args([
        "user",
        "create",
        "--username",
        "root",
        "--email",
        "root@example.com",
        "--admin",
    ]);
    let out = run_with_stdin(cmd, "a long admin password\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("with role admin"),
        "{}",
        text(&out.stdout)
    );

    // The same name again is refused; so is a short password.
    let mut cmd = sandpit(&dir);
    cmd.args(["user", "create", "--username", "ROOT"]);
    let out = run_with_stdin(cmd, "another long password\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("username is taken"),
        "{}",
        text(&out.stderr)
    );
    let mut cmd = sandpit(&dir);
    cmd.args(["user", "create", "--username", "shorty"]);
    let out = run_with_stdin(cmd, "short\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("password"),
        "{}",
        text(&out.stderr)
    );

    // The admin can sign in through the server and is an admin there.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("data/sandpit.db").display()
        );
        let store = sandpit_store::connect(&url, 1).await.unwrap();
        let user = store.user_by_username("root").await.unwrap().unwrap();
        assert_eq!(user.role, sandpit_store::Role::Admin);
        assert_eq!(user.email.as_deref(), Some("root@example.com"));
        assert!(user.password_hash.unwrap().starts_with("$argon2id$"));
    });
}

#[test]
fn serve_with_no_configuration_then_stop_on_sigterm() {
    let dir = TempDir::new().unwrap();
    let mut child = sandpit(&dir)
        .env("SANDPIT_SERVER__BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let line = lines.next().expect("server exited early").unwrap();
        let entry: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if entry["fields"]["message"] == "listening" {
            break entry["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    // Zero set-up: SQLite and a generated signing secret in the data directory.
    assert!(dir.path().join("data/sandpit.db").exists());
    let secret = dir.path().join("data/secret.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let stream = std::net::TcpStream::connect(&addr).unwrap();
    let mut stream = std::io::BufReader::new(stream);
    write!(
        stream.get_mut(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

/// `sandpit lab validate`: every built-in lab is fine; a broken folder is reported with each
/// problem's file and line and a failing exit code; a duplicate slug is refused.
#[test]
fn lab_validate_reports_problems_with_file_and_line() {
    let dir = TempDir::new().unwrap();
    let out = sandpit(&dir)
        .args(["lab", "validate", "--built-in"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("ok   python-functions"));

    let labs = dir.path().join("labs");
    let bad = labs.join("bad");
    std::fs::create_dir_all(bad.join("solution")).unwrap();
    std::fs::write(bad.join("solution/x"), "x").unwrap();
    std::fs::write(
        bad.join("lab.toml"),
        "slug = \"python-functions\"\ntitle = \"T\"\nsummary = \"S\"\ndifficulty = \"beginner\"\n\n\
         [[steps]]\nid = \"one\"\ntitle = \"One\"\ntext = \"steps/one.md\"\n\n\
         [[steps.checks]]\ntype = \"file_matches\"\ncode = \"c\"\npath = \"a\"\npattern = \"(\"\n\
         message = \"m\"\nhint = \"h\"\n",
    )
    .unwrap();
    let out = sandpit(&dir)
        .args(["lab", "validate"])
        .arg(&labs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = text(&out.stdout);
    let toml = bad.join("lab.toml").display().to_string();
    assert!(
        report.contains(&format!("{toml}:9: steps[0].text: no such file")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{toml}:11: steps[0].checks[0] (file_matches): bad regular expression"
        )),
        "{report}"
    );

    // Fixed, it validates alone — and collides with the built-in lab of the same slug.
    std::fs::create_dir_all(bad.join("steps")).unwrap();
    std::fs::write(bad.join("steps/one.md"), "# One\n").unwrap();
    let fixed = std::fs::read_to_string(bad.join("lab.toml"))
        .unwrap()
        .replace("pattern = \"(\"", "pattern = \"x\"");
    std::fs::write(bad.join("lab.toml"), fixed).unwrap();
    let out = sandpit(&dir)
        .args(["lab", "validate"])
        .arg(&labs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = sandpit(&dir)
        .args(["lab", "validate", "--built-in"])
        .arg(&labs)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stdout)
            .contains("slug \"python-functions\" is also used by built-in/python-functions"),
        "{}",
        text(&out.stdout)
    );
}
