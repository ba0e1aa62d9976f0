"""Step "json-errors": /health and unknown paths answer JSON, labelled application/json.

Starts its own copy of app.py on a free port (PORT=...), asks it, and stops it. Run by the judge
as `/usr/bin/python3 -c <this file>` in /workspace, as the learner. On failure it prints one line
per problem (the judge shows them as the message) and exits 1.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True

PATHS = [("/health", 200), ("/no-such-page", 404)]
START_SECONDS = 5


def fail(message):
    print(message)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port):
    if not os.path.isfile("app.py"):
        fail("app.py is missing from /workspace.")
    env = dict(os.environ, PORT=str(port), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    app = subprocess.Popen([sys.executable, "app.py"], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if app.poll() is not None:
            errors = [ln for ln in app.stderr.read().splitlines() if ln.strip()]
            last = errors[-1] if errors else f"exit status {app.returncode}"
            fail(f"app.py stopped while starting: {last}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return app
        except OSError:
            time.sleep(0.05)
    app.kill()
    fail(f"app.py did not listen on the port from the PORT variable within {START_SECONDS} s "
         "(keep `PORT = int(os.environ.get(\"PORT\", \"8000\"))`).")


def problems_of(port, path, status):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as e:
        return [f"GET {path} got no answer: {e}"]
    finally:
        conn.close()
    found = []
    if response.status != status:
        found.append(f"GET {path} answered {response.status} — expected {status}")
    content_type = response.getheader("Content-Type") or "(none)"
    if content_type.split(";")[0].strip().lower() != "application/json":
        found.append(f"GET {path} answered Content-Type: {content_type} — expected application/json")
    text = body.decode("utf-8", errors="replace")
    try:
        json.loads(text)
    except ValueError as e:
        shown = text if len(text) <= 60 else text[:57] + "..."
        found.append(f"GET {path}: the body is not valid JSON ({e.msg}): {shown!r}")
    return found


def main():
    port = free_port()
    app = start(port)
    try:
        found = [p for path, status in PATHS for p in problems_of(port, path, status)]
    finally:
        app.terminate()
        try:
            app.wait(3)
        except subprocess.TimeoutExpired:
            app.kill()
    if found:
        print("\n".join(found))
        sys.exit(1)


main()
