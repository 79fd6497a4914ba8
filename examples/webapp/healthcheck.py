"""The image's HEALTHCHECK: GET /health; print what it answered so
`docker inspect` (and jenkinsctl's failure report) shows why."""

import os
import sys
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/health"
try:
    with urllib.request.urlopen(url, timeout=2) as resp:
        print(f"GET /health -> {resp.status}: {resp.read().decode(errors='replace').strip()}")
except urllib.error.HTTPError as exc:
    print(f"GET /health -> {exc.code}: {exc.read().decode(errors='replace').strip()}")
    sys.exit(1)
except OSError as exc:
    print(f"GET /health failed: {exc}")
    sys.exit(1)
