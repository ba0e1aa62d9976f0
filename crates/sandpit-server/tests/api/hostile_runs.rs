//! Hostile programs through `POST /api/v1/runs`: each is stopped at its limit and reported as
//! such, and afterwards the server still answers, the host is unchanged and the next run (in
//! the same warm sandbox) sees no trace of it. The sandbox crate's own suite
//! (`crates/sandpit-sandbox/tests/hostile.rs`) covers more cases at the engine level.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

struct Case {
    name: &'static str,
    runtime: &'static str,
    code: String,
    limits: Value,
    /// Expected `run.status`.
    status: &'static str,
    /// A check on the run stage beyond the status.
    check: Check,
}

type Check = Box<dyn Fn(&Value) -> Result<(), String>>;

fn ok() -> Check {
    Box::new(|_| Ok(()))
}

fn stdout_is(expected: &'static str) -> Check {
    Box::new(move |r: &Value| {
        if r["stdout"] == expected {
            Ok(())
        } else {
            Err(format!("stdout {} != {expected:?}", r["stdout"]))
        }
    })
}

fn check(f: impl Fn(&Value) -> Result<(), String> + 'static) -> Check {
    Box::new(f)
}

fn cases(app: &TestApp) -> Vec<Case> {
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let data_dir = app.state.config.data_dir.display().to_string();
    let py = |name, code: String, limits, status, check: Check| Case {
        name,
        runtime: "python3",
        code,
        limits,
        status,
        check,
    };
    vec![
        py(
            "fork bomb",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass".into(),
            json!({"wall_ms": 1500, "processes": 32}),
            "time_limit",
            ok(),
        ),
        py(
            "memory bomb",
            "b = []\nwhile True:\n    b.append(bytearray(16 << 20))".into(),
            json!({"memory_mb": 64}),
            "memory_limit",
            ok(),
        ),
        py(
            "stdout flood",
            "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)".into(),
            json!({"output_bytes": 10000}),
            "output_limit",
            check(|r: &Value| {
                let n = r["stdout"].as_str().unwrap_or_default().len();
                if n == 10000 && r["stdout_truncated"] == true {
                    Ok(())
                } else {
                    Err(format!("{n} bytes, truncated {}", r["stdout_truncated"]))
                }
            }),
        ),
        py(
            "stderr flood",
            "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)".into(),
            json!({"output_bytes": 5000}),
            "output_limit",
            check(|r: &Value| {
                if r["stderr"].as_str().unwrap_or_default().len() == 5000
                    && r["stderr_truncated"] == true
                {
                    Ok(())
                } else {
                    Err("stderr not cut at the limit".into())
                }
            }),
        ),
        py(
            "cpu spin",
            "while True:\n    pass".into(),
            json!({"cpu_ms": 1000, "wall_ms": 20000}),
            "time_limit",
            check(|r: &Value| {
                let cpu = r["cpu_ms"].as_u64().unwrap_or_default();
                // It really spun (the kernel stops it at about 1 s of CPU).
                if cpu >= 500 {
                    Ok(())
                } else {
                    Err(format!("cpu_ms {cpu}"))
                }
            }),
        ),
        py(
            "sleep past the wall limit",
            "import time\ntime.sleep(60)".into(),
            json!({"wall_ms": 300}),
            "time_limit",
            ok(),
        ),
        py(
            "disk fill of workspace, /tmp and /dev/shm",
            "import errno\nfor d in ['.', '/tmp', '/dev/shm']:\n    try:\n        with open(d + '/fill', 'wb') as f:\n            while True:\n                f.write(b'x' * (1 << 20))\n    except OSError as e:\n        print(d, errno.errorcode[e.errno])".into(),
            json!({"memory_mb": 512}),
            "ok",
            check(|r: &Value| {
                // Stopped by the tmpfs size (ENOSPC) or the file size limit (EFBIG).
                let out = r["stdout"].as_str().unwrap_or_default();
                let lines: Vec<_> = out.lines().collect();
                if lines.len() == 3
                    && lines.iter().all(|l| l.ends_with("ENOSPC") || l.ends_with("EFBIG"))
                {
                    Ok(())
                } else {
                    Err(out.to_owned())
                }
            }),
        ),
        py(
            "the server's own port",
            format!("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\nexcept OSError as e:\n    print('refused')"),
            json!({}),
            "ok",
            stdout_is("refused\n"),
        ),
        py(
            "a public address and DNS",
            "import socket\nfor target in [('1.1.1.1', 53), ('example.com', 80)]:\n    try:\n        socket.create_connection(target, timeout=2)\n        print('connected')\n    except OSError:\n        print('blocked')".into(),
            json!({}),
            "ok",
            stdout_is("blocked\nblocked\n"),
        ),
        py(
            "host secrets",
            format!("import os\nfor p in ['{data_dir}', '/etc/shadow', '/root', '/home', '/work', '/tmp/fill']:\n    print(p, os.path.exists(p))\nprint(open('/proc/1/cmdline').read().split(chr(0))[0].endswith('agent') or open('/proc/1/cmdline').read())"),
            json!({}),
            "ok",
            check(|r: &Value| {
                let out = r["stdout"].as_str().unwrap_or_default();
                let leaks: Vec<_> = out.lines().filter(|l| l.ends_with(" True")).collect();
                if leaks.is_empty() && out.lines().count() == 7 {
                    Ok(())
                } else {
                    Err(format!("visible: {out}"))
                }
            }),
        ),
        py(
            "writing outside the workspace",
            "import errno\nfor p in ['/usr/evil', '/etc/evil', '/evil', '/proc/sys/kernel/hostname']:\n    try:\n        open(p, 'w').write('x')\n        print(p, 'written')\n    except OSError as e:\n        print(p, errno.errorcode[e.errno])".into(),
            json!({}),
            "ok",
            check(|r: &Value| {
                let out = r["stdout"].as_str().unwrap_or_default();
                if out.contains("written") || out.lines().count() != 4 {
                    Err(out.to_owned())
                } else {
                    Ok(())
                }
            }),
        ),
        py(
            "ptrace, mount and nested namespaces",
            "import ctypes, os, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.ptrace(0, 0, 0, 0))\nprint(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\nprint(libc.unshare(0x10000000))\nprint(subprocess.run(['/usr/bin/unshare', '-n', 'true'], capture_output=True).returncode != 0)".into(),
            json!({}),
            "ok",
            stdout_is("-1\n-1\n-1\nTrue\n"),
        ),
        py(
            "setuid binaries stay unprivileged",
            "import subprocess, os\nr = subprocess.run(['/usr/bin/su', '-c', 'id -u', 'root'], capture_output=True, stdin=subprocess.DEVNULL) if os.path.exists('/usr/bin/su') else None\nprint(r is None or r.returncode != 0)\nprint(1900000000 <= os.geteuid() < 1900010000, os.getegid() == os.geteuid())".into(),
            json!({}),
            "ok",
            stdout_is("True\nTrue True\n"),
        ),
        Case {
            name: "kill -9 -1",
            runtime: "bash",
            // Reaches every process of the sandbox user it may signal (not the agent, not the
            // host): the sleep dies, the shell itself is spared by kill(2).
            code: "sleep 100 & kill -9 -1; wait $!; echo \"sleep ended $?\"".into(),
            limits: json!({}),
            status: "ok",
            check: stdout_is("sleep ended 137\n"),
        },
        Case {
            name: "processes left behind",
            runtime: "bash",
            code: "setsid sleep 1000 & (sleep 1001 &) & echo started".into(),
            limits: json!({}),
            status: "ok",
            check: stdout_is("started\n"),
        },
        Case {
            name: "environment leakage",
            runtime: "bash",
            code: "env | cut -d= -f1 | sort | tr '\\n' ' '".into(),
            limits: json!({}),
            status: "ok",
            check: stdout_is("HOME LANG PATH PWD SHLVL TMPDIR USER _ "),
        },
    ]
}

#[tokio::test]
async fn hostile_programs_are_stopped_and_leave_no_trace() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("mallory").await;
    let cases = cases(&app);
    let mut failures = Vec::new();
    for case in &cases {
        let a = app
            .post(
                "/api/v1/runs",
                Some(&token),
                json!({"runtime": case.runtime, "files": [{"name": "main", "content": case.code}], "limits": case.limits}),
            )
            .await;
        if a.status != StatusCode::OK {
            failures.push(format!("{}: HTTP {} {}", case.name, a.status, a.body));
            continue;
        }
        let r = &a.body["run"];
        if r["status"] != case.status {
            failures.push(format!(
                "{}: status {} (want {}): {r}",
                case.name, r["status"], case.status
            ));
        } else if let Err(e) = (case.check)(r) {
            failures.push(format!("{}: {e}", case.name));
        }
        // After every case: the server answers, and the next run sees a clean sandbox.
        let after = app
            .post(
                "/api/v1/runs",
                Some(&token),
                json!({"runtime": "bash", "files": [{"name": "a.sh", "content":
                    "ls -A /workspace /tmp /dev/shm | grep -c -v -e ':$' -e '^$' -e '^main.sh$'; ps -e -o comm= | grep -c -v -e '^ps$' -e '^bash$' -e '^grep$' -e '^sandpit'"}]}),
            )
            .await;
        let out = after.body["run"]["stdout"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if after.status != StatusCode::OK || out != "0\n0\n" {
            failures.push(format!(
                "{}: trace left for the next run: {out:?} {}",
                case.name, after.body
            ));
        }
    }
    println!("hostile cases run through the API: {}", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The host is untouched: nothing was written where sandboxed code tried to write.
    for path in ["/usr/evil", "/etc/evil", "/evil"] {
        assert!(
            !std::path::Path::new(path).exists(),
            "{path} exists on the host"
        );
    }
}
