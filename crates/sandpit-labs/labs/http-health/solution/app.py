"""A tiny web service, standard library only.

Run it:    python3 app.py            (listens on port 8000; PORT=9000 python3 app.py for another)
Try it:    python3 fetch.py /        (in a second terminal, or after `python3 app.py &`)
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOST = os.environ.get("HOST", "0.0.0.0")
PORT = int(os.environ.get("PORT", "8000"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path = urlsplit(self.path).path  # without ?query
        if path == "/":
            self.send_text(200, "Hello from sandpit!\n")
        elif path == "/health":
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, {"error": "not found", "path": path})

    def send_text(self, status, text):
        self.send_body(status, "text/plain; charset=utf-8", text.encode("utf-8"))

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
    # Stop cleanly on SIGTERM (kill, the judge, docker stop), not only on Ctrl-C.
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
