"""A tiny curl: prints the status, the headers and the body of a GET on the local app.

    python3 fetch.py /health          -> GET http://127.0.0.1:8000/health
    python3 fetch.py /health 9000     -> the same on port 9000
"""

import sys
import urllib.error
import urllib.request

path = sys.argv[1] if len(sys.argv) > 1 else "/"
port = sys.argv[2] if len(sys.argv) > 2 else "8000"
url = f"http://127.0.0.1:{port}{path}"
try:
    response = urllib.request.urlopen(url, timeout=5)
except urllib.error.HTTPError as e:  # 4xx and 5xx still have a status, headers and a body
    response = e
except OSError as e:
    sys.exit(f"{url}: {getattr(e, 'reason', e)} — is the app running? (python3 app.py &)")
print(response.status, response.reason)
for name, value in response.headers.items():
    print(f"{name}: {value}")
print()
print(response.read().decode("utf-8", errors="replace"))
