//! The runs API end to end: real programs in real sandboxes, through HTTP.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

async fn run(app: &TestApp, token: &str, body: Value) -> Answer {
    app.post("/api/v1/runs", Some(token), body).await
}

fn stage<'a>(a: &'a Answer, which: &str) -> &'a Value {
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    &a.body[which]
}

#[tokio::test]
async fn runtimes_are_detected_and_listed() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("alice").await;
    assert_eq!(
        app.get("/api/v1/runtimes", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let a = app.get("/api/v1/runtimes", Some(&token)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let runtimes = a.body["runtimes"].as_array().unwrap();
    let find = |name: &str| runtimes.iter().find(|r| r["name"] == name).cloned();
    let python = find("python3").expect("python3 is installed here");
    assert!(python["version"].as_str().unwrap().starts_with("Python 3"));
    assert!(
        python["aliases"]
            .as_array()
            .unwrap()
            .contains(&json!("python"))
    );
    assert_eq!(python["compiled"], false);
    assert_eq!(find("c").expect("gcc is installed here")["compiled"], true);
    assert!(find("bash").is_some());
}

#[tokio::test]
async fn python_reads_stdin_and_c_runs_each_test_case_after_one_compile() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("alice").await;
    let a = run(
        &app,
        &token,
        json!({"runtime": "python", "stdin": "hello", "files": [
            {"name": "prog.py", "content": "import sys\nprint(sys.stdin.read()[::-1])\nprint('warn', file=sys.stderr)"}
        ]}),
    )
    .await;
    let r = stage(&a, "run");
    assert_eq!(a.body["runtime"], "python3");
    assert_eq!(a.body["state"], "done");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["stdout"], "olleh\n");
    assert_eq!(r["stderr"], "warn\n");
    assert_eq!(r["exit_code"], 0);
    assert!(r["memory_kb"].as_u64().unwrap() > 0);
    assert!(a.body.get("compile").is_none());

    let a = run(
        &app,
        &token,
        json!({"runtime": "c", "files": [{"name": "main.c", "content":
            "#include <stdio.h>\nint main(void){int a,b; if(scanf(\"%d %d\",&a,&b)!=2) return 3; printf(\"%d\\n\", a+b); return 0;}"}],
            "tests": [
                {"stdin": "1 2", "expected_stdout": "3"},
                {"stdin": "20 22\n", "expected_stdout": "42\n"},
                {"stdin": "5 5", "expected_stdout": "11"},
                {"stdin": "oops"},
            ]}),
    )
    .await;
    assert_eq!(stage(&a, "compile")["status"], "ok");
    assert!(a.body.get("run").is_none());
    let tests = a.body["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4);
    assert_eq!(tests[0]["passed"], true);
    assert_eq!(tests[1]["passed"], true);
    assert_eq!(tests[2]["passed"], false);
    assert_eq!(tests[2]["stdout"], "10\n");
    assert_eq!(tests[3]["status"], "runtime_error");
    assert_eq!(tests[3]["exit_code"], 3);
    assert!(tests[3]["passed"].is_null());
}

#[tokio::test]
async fn compile_errors_and_runtime_errors_are_reported_as_such() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("alice").await;
    let a = run(
        &app,
        &token,
        json!({"runtime": "c", "files": [{"name": "main.c", "content": "int main(void) { return x; }"}]}),
    )
    .await;
    let c = stage(&a, "compile");
    assert_eq!(c["status"], "compile_error");
    assert!(c["stderr"].as_str().unwrap().contains("undeclared"));
    assert!(a.body.get("run").is_none());

    let a = run(
        &app,
        &token,
        json!({"runtime": "bash", "files": [{"name": "x.sh", "content": "echo out; exit 7"}]}),
    )
    .await;
    let r = stage(&a, "run");
    assert_eq!(r["status"], "runtime_error");
    assert_eq!(r["exit_code"], 7);
    assert_eq!(r["stdout"], "out\n");

    let a = run(
        &app,
        &token,
        json!({"runtime": "c", "files": [{"name": "main.c", "content": "int main(void){ int *p = 0; return *p; }"}]}),
    )
    .await;
    let r = stage(&a, "run");
    assert_eq!(r["status"], "runtime_error");
    assert_eq!(r["signal"], 11);
}

#[tokio::test]
async fn arguments_arrive_verbatim_and_never_through_a_shell() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("alice").await;
    let args = json!([
        "a b",
        "$(touch pwned)",
        "`id`",
        "'\"",
        "x;y",
        "line\nbreak",
        "--help"
    ]);
    let a = run(
        &app,
        &token,
        json!({"runtime": "python", "args": args, "files": [{"name": "main.py", "content":
            "import sys, json, os\nprint(json.dumps(sys.argv[1:]))\nprint(os.path.exists('pwned'))"}]}),
    )
    .await;
    let out = stage(&a, "run")["stdout"].as_str().unwrap().to_owned();
    let mut lines = out.lines();
    let echoed: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(echoed, args);
    assert_eq!(lines.next(), Some("False"));
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let (_, token) = app.signup("alice").await;
    let file = json!([{"name": "main.py", "content": "print(1)"}]);
    let cases = [
        (json!({"runtime": "cobol", "files": file}), "runtime"),
        (json!({"runtime": "python", "files": []}), "files"),
        (
            json!({"runtime": "python", "files": [{"name": "../x.py", "content": ""}]}),
            "files.name",
        ),
        (
            json!({"runtime": "python", "files": [{"name": "/etc/passwd", "content": ""}]}),
            "files.name",
        ),
        (
            json!({"runtime": "python", "files": [{"name": "a.py", "content": "!!", "encoding": "base64"}]}),
            "files.content",
        ),
        (
            json!({"runtime": "python", "files": file, "limits": {"wall_ms": 10_000_000}}),
            "limits.wall_ms",
        ),
        (
            json!({"runtime": "python", "files": file, "limits": {"memory_mb": 1_000_000}}),
            "limits.memory_mb",
        ),
        (
            json!({"runtime": "python", "files": file, "args": ["a\u{0}b"]}),
            "args",
        ),
        (
            json!({"runtime": "python", "files": file, "tests": []}),
            "tests",
        ),
        (
            json!({"runtime": "python", "files": file, "stdin": "x", "tests": [{"stdin": "y"}]}),
            "stdin",
        ),
    ];
    for (body, field) in cases {
        let a = run(&app, &token, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            a.body
        );
        assert_eq!(a.body["error"]["code"], "validation_failed");
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{body}: {message}"
        );
    }
    assert_eq!(
        app.post(
            "/api/v1/runs",
            None,
            json!({"runtime": "python", "files": file})
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn asynchronous_runs_are_polled_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.signup("alice").await;
    let (_, bob) = app.signup("bob").await;
    let a = app
        .post(
            "/api/v1/runs?wait=false",
            Some(&alice),
            json!({"runtime": "bash", "files": [{"name": "a.sh", "content": "echo async"}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["state"], "pending");
    let id = a.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/runs/{id}");
    let done = loop {
        let a = app.get(&path, Some(&alice)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        if a.body["state"] == "done" {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(done.body["run"]["stdout"], "async\n");
    assert_eq!(
        app.get(&path, Some(&bob)).await.status,
        StatusCode::NOT_FOUND
    );
    let unknown = format!("/api/v1/runs/{}", uuid::Uuid::now_v7());
    assert_eq!(
        app.get(&unknown, Some(&alice)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.runs.max_concurrent = 1;
        c.runs.max_queued = 1;
    })
    .await;
    let (_, token) = app.signup("alice").await;
    // Warm the runtime registry first so every request below reaches admission.
    assert_eq!(
        app.get("/api/v1/runtimes", Some(&token)).await.status,
        StatusCode::OK
    );
    let body =
        json!({"runtime": "bash", "files": [{"name": "a.sh", "content": "sleep 2; echo done"}]});
    let answers = futures::future::join_all((0..5).map(|_| run(&app, &token, body.clone()))).await;
    let ok = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    let busy: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert_eq!(
        ok + busy.len(),
        5,
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    // One runs, one waits; the other three are turned away.
    assert!(busy.len() >= 3, "{} refused", busy.len());
    for a in busy {
        assert_eq!(a.body["error"]["code"], "busy");
        assert_eq!(a.headers["retry-after"], "1");
    }
}
