"""Judge0's official Python SDK (judge0 on PyPI, written by Judge0's authors) and a Piston
client (piston-client on npm, run by node) against sandpit's compatible APIs. Judge0: single and batch submissions, test cases, compile errors, runtime
errors, time limits and expected output, through the SDK's own calls; then the bad input
Judge0 itself was escaped with, through raw HTTP, each answered in Judge0's error shape.

Starts the real server (SANDPIT_BIN, default target/debug/sandpit) on a fresh data directory,
as the API fuzzer does (its Server is reused). Run through scripts/compat/run.
"""

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "api-fuzz"))
from fuzz import Server, call  # noqa: E402

os.environ.setdefault("JUDGE0_SUPPRESS_PREVIEW_WARNING", "1")
import judge0  # noqa: E402
from judge0 import Status  # noqa: E402

FAILURES: list[str] = []


def check(what: str, ok: bool, detail="") -> None:
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        FAILURES.append(what)


def raw(base: str, method: str, path: str, token: str | None, body=None, header="X-Auth-Token"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header(header, token if header == "X-Auth-Token" else f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def sdk_cases(client) -> None:
    ids = {lang.id for lang in client.languages}
    check("languages list Judge0's ids for Python, C, C++, Bash", {71, 50, 54, 46} <= ids, ids)
    check("about names the Judge0 version the SDK knows", client.version == "1.13.1", client.version)

    one = judge0.run(client=client, source_code="print(input()[::-1])", language=judge0.PYTHON, stdin="sandpit")
    check("single: accepted with its stdout", one.status == Status.ACCEPTED and one.stdout == "tipdnas\n", (one.status, one.stdout))
    check("single: time and memory reported", one.time is not None and one.memory and one.memory > 0, (one.time, one.memory))

    right = judge0.run(client=client, source_code="print(6 * 7)", language=71, expected_output="42")
    wrong = judge0.run(client=client, source_code="print(6 * 9)", language=71, expected_output="42")
    check("expected output: accepted", right.status == Status.ACCEPTED, right.status)
    check("expected output: wrong answer", wrong.status == Status.WRONG_ANSWER, (wrong.status, wrong.stdout))

    cases = judge0.run(
        client=client,
        source_code="a, b = map(int, input().split()); print(a + b)",
        language=judge0.PYTHON,
        test_cases=[("1 2", "3"), ("2 2", "5"), ("10 -3", "7")],
    )
    check(
        "test cases (a batch): accepted, wrong answer, accepted",
        [c.status for c in cases] == [Status.ACCEPTED, Status.WRONG_ANSWER, Status.ACCEPTED],
        [c.status for c in cases],
    )

    batch = judge0.run(
        client=client,
        submissions=[
            judge0.Submission(source_code='echo "bash $((1+1))"', language=judge0.BASH),
            judge0.Submission(source_code='#include <stdio.h>\nint main(){puts("c");return 0;}', language=judge0.C),
            judge0.Submission(source_code="console.log('js')", language=judge0.JAVASCRIPT),
        ],
    )
    check(
        "batch of three languages",
        [(s.status, s.stdout) for s in batch] == [(Status.ACCEPTED, "bash 2\n"), (Status.ACCEPTED, "c\n"), (Status.ACCEPTED, "js\n")],
        [(s.status, s.stdout, s.stderr, s.compile_output) for s in batch],
    )

    compile_error = judge0.run(client=client, source_code="int main() { return oops; }", language=judge0.C)
    check(
        "compile error with the compiler's output",
        compile_error.status == Status.COMPILATION_ERROR and "oops" in (compile_error.compile_output or ""),
        (compile_error.status, compile_error.compile_output),
    )

    nzec = judge0.run(client=client, source_code="import sys\nprint('partial')\nsys.exit(3)", language=71)
    check(
        "runtime error (NZEC) with the exit code",
        nzec.status == Status.RUNTIME_ERROR_NZEC and nzec.exit_code == 3 and nzec.stdout == "partial\n",
        (nzec.status, nzec.exit_code, nzec.stdout),
    )
    segv = judge0.run(client=client, source_code="int main(){ volatile int *p = 0; return *p; }", language=judge0.C)
    check("runtime error (SIGSEGV)", segv.status == Status.RUNTIME_ERROR_SIGSEGV, (segv.status, segv.exit_signal))

    spin = judge0.run(client=client, source_code="while True:\n    pass", language=71, cpu_time_limit=0.5, wall_time_limit=2)
    check("time limit exceeded", spin.status == Status.TIME_LIMIT_EXCEEDED, (spin.status, spin.time))

    merged = judge0.run(
        client=client,
        source_code="import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr, flush=True)\nprint('out2')",
        language=71,
        redirect_stderr_to_stdout=True,
    )
    check("stderr redirected into stdout, in order", merged.stdout == "out\nerr\nout2\n", merged.stdout)

    args = judge0.run(client=client, source_code='printf "%s|" "$@"', language=46, command_line_arguments="a 'b c' \"d\"")
    check("command line arguments split as a shell would, without one", args.stdout == "a|b c|d|", args.stdout)

    files = judge0.Filesystem(content=[
        judge0.File(name="run", content="python3 main.py < data.txt\n"),
        judge0.File(name="main.py", content="from util import double\nprint(double(int(input())))\n"),
        judge0.File(name="util.py", content="def double(x):\n    return 2 * x\n"),
        judge0.File(name="data.txt", content="21\n"),
    ])
    multi = judge0.run(client=client, submissions=judge0.Submission(source_code="", language=judge0.MULTI_FILE, additional_files=files))
    check("multi-file program from additional_files", multi.status == Status.ACCEPTED and multi.stdout == "42\n", (multi.status, multi.stdout, multi.stderr))

    optimized = judge0.run(
        client=client,
        source_code="#include <stdio.h>\n#include <math.h>\nint main(){printf(\"%.0f %d\\n\", sqrt(81.0), VALUE);}",
        language=judge0.C,
        compiler_options="-O3 -DVALUE=7 -lm",
    )
    check("allowed compiler options", optimized.stdout == "9 7\n", (optimized.status, optimized.compile_output))


def bad_input(base: str, token: str, other: str) -> None:
    def expect(what, status, body, want_status, field=None):
        ok = status == want_status and (field is None or (isinstance(body, dict) and field in body))
        check(what, ok, (status, body))

    s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "print(1)", "language_id": 9999})
    expect("unknown language id: 422 naming language_id", s, b, 422, "language_id")
    s, b = raw(base, "POST", "/judge0/submissions?base64_encoded=true", token, {"source_code": "%%%not base64", "language_id": 71})
    expect("base64 that is not: 422 naming source_code", s, b, 422, "source_code")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "print(1)", "language_id": 71, "cpu_time_limit": 10_000})
    expect("a limit out of range: 422 naming it", s, b, 422, "cpu_time_limit")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "print(1)", "language_id": 71, "memory_limit": "lots"})
    expect("a limit of the wrong type: 422 naming it", s, b, 422, "memory_limit")
    for url in ["http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "http://localhost/"]:
        s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "print(1)", "language_id": 71, "callback_url": url})
        expect(f"callback_url {url}: refused", s, b, 422, "callback_url")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "int main(){}", "language_id": 50, "compiler_options": "-o /tmp/x -Wl,--wrap=main"})
    expect("compiler options off the allowlist: refused", s, b, 422, "compiler_options")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "print(1)", "language_id": 71, "enable_network": True})
    expect("network: refused", s, b, 422, "enable_network")

    # Judge0's own escapes: a symlink in additional_files pointing out of the box.
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("run")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/shadow")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"language_id": 89, "additional_files": b64(link.getvalue())})
    expect("a symlink in additional_files: refused", s, b, 422, "additional_files")
    escape = io.BytesIO()
    with zipfile.ZipFile(escape, "w") as z:
        z.writestr("../../outside", "x")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"language_id": 89, "additional_files": b64(escape.getvalue())})
    expect("a path out of the workspace in additional_files: refused", s, b, 422, "additional_files")
    s, b = raw(base, "POST", "/judge0/submissions", token, {"language_id": 89, "additional_files": "not a zip"})
    expect("additional_files that is not a zip: refused", s, b, 422, "additional_files")
    # chown and chmod inside the box change only the box: the host file is untouched.
    s, b = raw(
        base,
        "POST",
        "/judge0/submissions?wait=true",
        token,
        {"source_code": "chown root:root main.sh 2>&1; chmod 777 /etc/passwd 2>&1; touch /etc/sandpit-was-here 2>&1; id -u", "language_id": 46},
    )
    check("chown/chmod tricks stay inside the sandbox", s == 201 and not os.path.exists("/etc/sandpit-was-here") and oct(os.stat("/etc/passwd").st_mode & 0o777) == "0o644", (s, b))

    s, b = raw(base, "POST", "/judge0/submissions", None, {"source_code": "print(1)", "language_id": 71})
    check("no token: 401 with Judge0's {\"error\": message}", s == 401 and isinstance(b, dict) and isinstance(b.get("error"), str), (s, b))
    s, b = raw(base, "POST", "/judge0/submissions", token, {"source_code": "print(1)", "language_id": 71}, header="Authorization")
    check("Authorization: Bearer works too", s == 201 and "token" in b, (s, b))
    mine = b.get("token") if isinstance(b, dict) else None
    s, b = raw(base, "GET", f"/judge0/submissions/{mine}", other)
    check("another user's submission is not found", s == 404, (s, b))
    s, b = raw(base, "GET", f"/judge0/submissions/{mine}?fields=stdout,nonsense", token)
    check("unknown fields: 400 naming them", s == 400 and "nonsense" in json.dumps(b), (s, b))
    s, b = raw(base, "GET", f"/judge0/submissions/batch?tokens={mine},not-a-token", token)
    check("batch get: null for a token that is not the caller's", s == 200 and b["submissions"][1] is None and b["submissions"][0]["token"] == mine, (s, b))


def piston_cases(base: str, token: str) -> None:
    """piston-client's view, run by node; its answers are checked here."""
    server = base.replace("http://", f"http://sandpit:{token}@", 1) + "/piston"
    done = subprocess.run(["node", str(HERE / "piston.mjs"), server], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        check("piston-client ran", False, done.stderr[-2000:])
        return
    out = json.loads(done.stdout.strip().splitlines()[-1])
    names = {r["language"] for r in out["runtimes"]} if isinstance(out["runtimes"], list) else set()
    check("piston: runtimes list python, c, bash", {"python", "c", "bash"} <= names, out["runtimes"])
    py = out["python"]
    check(
        "piston: python with stdin and the client's default args",
        py.get("run", {}).get("stdout") == "tipdnas ['1', '2', '3']\n" and py["run"]["code"] == 0 and py["language"] == "python",
        py,
    )
    c = out["c"]
    check("piston: c compiles and runs", c.get("compile", {}).get("code") == 0 and c.get("run", {}).get("stdout") == "from c\n", c)
    ce = out["compile_error"]
    check("piston: a compile error is the compile stage's", ce.get("compile", {}).get("code") not in (0, None) and "oops" in ce["compile"]["stderr"], ce)
    re_ = out["runtime_error"]
    check("piston: an exit code", re_.get("run", {}).get("code") == 3 and re_["run"]["stdout"] == "partial\n", re_)
    to = out["timeout"]
    check("piston: a time limit", to.get("run", {}).get("status") == "TO" and to["run"]["signal"] == "SIGKILL" or to.get("run", {}).get("status") == "TO", to)
    files = out["files"]
    check("piston: several files", files.get("run", {}).get("stdout") == "42\n", files)
    unknown = out["unknown"]
    check("piston: an unknown language is Piston's 400 message", "runtime is unknown" in unknown.get("message", ""), unknown)
    s, b = raw(base, "GET", "/piston/api/v2/runtimes", None)
    check("piston: no token is refused, in Piston's shape", s == 401 and isinstance(b, dict) and isinstance(b.get("message"), str), (s, b))


def make_user(base: str, name: str) -> str:
    login = call(base, "POST", "/api/v1/auth/signup", body={"username": name, "password": "judge zero compat"})
    made = call(base, "POST", "/api/v1/tokens", token=login["token"], body={"name": "judge0", "expires_in_days": 1})
    return made["secret"]


def main() -> int:
    data_dir = tempfile.mkdtemp(prefix="sandpit-compat-")
    server = Server(data_dir)
    try:
        token = make_user(server.base, "judge0-sdk")
        other = make_user(server.base, "someone-else")
        client = judge0.Client(endpoint=server.base + "/judge0", headers={"X-Auth-Token": token})
        sdk_cases(client)
        bad_input(server.base, token, other)
        piston_cases(server.base, token)
    finally:
        server.stop()
    for line in server.problems():
        check("no panic or internal error in the log", False, line)
    if FAILURES:
        print(f"compat: {len(FAILURES)} failed")
        return 1
    print("compat: every case passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
