"""Fuzz sandpit's API against its own OpenAPI document with schemathesis.

Starts the real server (`SANDPIT_BIN`, default target/debug/sandpit) on a fresh data directory
and port, makes an admin with a personal API token, and runs schemathesis over every operation
but the terminal's WebSocket, with a fixed seed and a bounded number of examples. Fails when
schemathesis finds anything, and when the server logged a panic or an internal error.

Run through `scripts/api-fuzz/run`, which installs schemathesis; see docs/API.md.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PASSWORD = "fuzzing is caring"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def binary() -> str:
    if os.environ.get("SANDPIT_BIN"):
        return os.environ["SANDPIT_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    return str(target / "debug" / "sandpit")


def server_env(data_dir: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "SANDPIT_DATA_DIR": data_dir,
            "SANDPIT_SERVER__BIND": "127.0.0.1:0",
            "SANDPIT_LOG__FORMAT": "json",
            # The fuzzer is one client sending thousands of requests.
            "SANDPIT_RATE_LIMIT__API_PER_MINUTE": "1000000",
            "SANDPIT_RATE_LIMIT__AUTH_PER_MINUTE": "1000000",
            # Keep generated programs short: a fuzzed timeout may be the maximum.
            "SANDPIT_SESSIONS__EXEC_DEFAULT_TIMEOUT_MS": "3000",
            "SANDPIT_SESSIONS__EXEC_MAX_TIMEOUT_MS": "3000",
            "SANDPIT_RUNS__DEFAULT_LIMITS__WALL_MS": "3000",
            "SANDPIT_RUNS__DEFAULT_LIMITS__CPU_MS": "2000",
            "SANDPIT_RUNS__MAX_LIMITS__WALL_MS": "3000",
            "SANDPIT_RUNS__MAX_LIMITS__CPU_MS": "2000",
            # The fixtures' sessions and the ones the fuzzer makes.
            "SANDPIT_SESSIONS__MAX_PER_USER": "8",
            # Fuzzed deploys of apps that never listen give up soon.
            "SANDPIT_APPS__START_TIMEOUT_SECONDS": "5",
        }
    )
    return env


def call_raw(base: str, method: str, path: str, token: str | None, data: bytes | None, json_body=False):
    req = urllib.request.Request(base + path, data=data, method=method)
    if json_body:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as res:
        return res.read()


def call(base: str, method: str, path: str, token: str | None = None, body=None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    return json.loads(call_raw(base, method, path, token, data, body is not None) or b"null")


class Server:
    """The real server as a child process; its log lines are kept for the final check."""

    def __init__(self, data_dir: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [binary(), "serve"],
            env=server_env(data_dir),
            cwd=data_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        listening = threading.Event()
        self.addr = None

        def drain():
            for line in self.proc.stdout:
                self.lines.append(line)
                if self.addr is None and '"listening"' in line:
                    try:
                        self.addr = json.loads(line)["fields"]["addr"]
                    except (ValueError, KeyError):
                        continue
                    listening.set()
            listening.set()

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(120) or self.addr is None:
            self.stop()
            sys.exit("api-fuzz: the server did not start:\n" + "".join(self.lines[-40:]))
        self.base = f"http://{self.addr}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def problems(self) -> list[str]:
        """Log lines that mean a bug even when the answer looked fine."""
        bad = []
        for line in self.lines:
            if "panicked" in line or '"internal error"' in line:
                bad.append(line.strip())
        return bad


def fixtures(base: str, token: str) -> dict:
    """Real resources of the fuzzer for the operations that name one (schemathesis.toml):
    sessions (one with a file), a lab session with an attempt, an async run (a job), a spare
    token, another user, projects, a deployed static app, and a database with a table."""
    session = call(base, "POST", "/api/v1/sessions", token, {})
    call_raw(base, "PUT", f"/api/v1/sessions/{session['id']}/files/hello.txt", token, b"hi\n")
    doomed = call(base, "POST", "/api/v1/sessions", token, {})
    lab = call(base, "POST", "/api/v1/labs/python-functions/start", token, {})["session"]
    attempt = call(base, "POST", f"/api/v1/sessions/{lab['id']}/judge", token, {})
    run = call(
        base,
        "POST",
        "/api/v1/runs?wait=false",
        token,
        {"runtime": "bash", "files": [{"name": "main.sh", "content": "echo hi"}]},
    )
    spare = call(base, "POST", "/api/v1/tokens", token, {"name": "spare"})
    project = call(base, "POST", "/api/v1/projects", token, {"name": "fuzzed", "template": "python"})
    doomed_project = call(base, "POST", "/api/v1/projects", token, {"name": "doomed"})
    app = call(base, "POST", "/api/v1/apps", token, {"name": "fuzzed", "runtime": "static"})
    call(base, "POST", f"/api/v1/apps/{app['id']}/deploy", token, {"files": {"index.html": "<p>fuzzed</p>"}})
    doomed_app = call(base, "POST", "/api/v1/apps", token, {"name": "doomed", "runtime": "static"})
    call(base, "POST", "/api/v1/database", token, {})
    call(
        base,
        "POST",
        "/api/v1/database/query",
        token,
        {"sql": "CREATE TABLE fuzzed (id INTEGER PRIMARY KEY, note TEXT)", "write": True},
    )
    other = call(
        base,
        "POST",
        "/api/v1/auth/signup",
        body={"username": "someone", "password": PASSWORD},
    )
    return {
        "SANDPIT_FUZZ_SESSION": session["id"],
        "SANDPIT_FUZZ_DOOMED_SESSION": doomed["id"],
        "SANDPIT_FUZZ_LAB_SESSION": lab["id"],
        "SANDPIT_FUZZ_ATTEMPT": attempt["id"],
        "SANDPIT_FUZZ_RUN": run["id"],
        "SANDPIT_FUZZ_SPARE_TOKEN": spare["token"]["id"],
        "SANDPIT_FUZZ_OTHER_USER": other["user"]["id"],
        "SANDPIT_FUZZ_PROJECT": project["id"],
        "SANDPIT_FUZZ_DOOMED_PROJECT": doomed_project["id"],
        "SANDPIT_FUZZ_APP": app["id"],
        "SANDPIT_FUZZ_DOOMED_APP": doomed_app["id"],
    }


def main() -> int:
    data_dir = tempfile.mkdtemp(prefix="sandpit-fuzz-")
    try:
        # An admin, so the admin-only operation is fuzzed past its 403 too.
        created = subprocess.run(
            [binary(), "user", "create", "--username", "fuzzer", "--admin"],
            input=PASSWORD + "\n",
            env=server_env(data_dir),
            cwd=data_dir,
            text=True,
            capture_output=True,
        )
        if created.returncode != 0:
            sys.exit("api-fuzz: sandpit user create failed:\n" + created.stderr[-4000:])
        server = Server(data_dir)
        try:
            login = call(
                server.base,
                "POST",
                "/api/v1/auth/login",
                body={"username": "fuzzer", "password": PASSWORD},
            )
            # A personal token, not the sign-in session: a fuzzed logout cannot end it.
            token = call(
                server.base,
                "POST",
                "/api/v1/tokens",
                token=login["token"],
                body={"name": "schemathesis", "expires_in_days": 1},
            )
            env = dict(os.environ)
            env.update(fixtures(server.base, token["secret"]))
            env.update(
                {
                    "SCHEMATHESIS_HOOKS": "hooks",
                    "PYTHONPATH": str(HERE),
                    "SANDPIT_FUZZ_TOKEN_ID": token["token"]["id"].lower(),
                    "SANDPIT_FUZZ_USER_ID": login["user"]["id"].lower(),
                }
            )
            st = shutil.which("st", path=os.environ.get("SANDPIT_FUZZ_BIN_DIR")) or "st"
            args = [
                st,
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{server.base}/api/openapi.json",
                "--url",
                server.base,
                "--checks",
                CHECKS,
                "--phases",
                os.environ.get("SANDPIT_FUZZ_PHASES", "examples,coverage,fuzzing,stateful"),
                "--seed",
                os.environ.get("SANDPIT_FUZZ_SEED", "20261202"),
                "--max-examples",
                os.environ.get("SANDPIT_FUZZ_EXAMPLES", "100"),
                "--exclude-path",
                "/api/v1/sessions/{id}/terminal",
                "--header",
                f"Authorization: Bearer {token['secret']}",
                "--request-timeout",
                "30",
                # One worker: CPython 3.11.2's AST constructor keeps its recursion depth per
                # interpreter, so Hypothesis describing lambdas in two threads at once can fail
                # with "AST constructor recursion depth mismatch" (python/cpython#106905).
                "--workers",
                "1",
                "--no-color",
            ]
            args += sys.argv[1:]
            print("api-fuzz: schemathesis against", server.base, flush=True)
            # Its cache goes with the data directory.
            status = subprocess.run(args, env=env, cwd=data_dir).returncode
        finally:
            server.stop()
        problems = server.problems()
        if problems:
            print("api-fuzz: the server logged panics or internal errors:", *problems[:20], sep="\n")
            return 1
        return status
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
