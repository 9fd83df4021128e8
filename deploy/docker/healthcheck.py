"""The container's HEALTHCHECK: exit 0 when `GET /health/ready` answers 200, else 1.

Plain standard library (the image has no curl). The port is the server's: CSMSTREAM_PORT, 8000 by default.
Set CSMSTREAM_HEALTHCHECK_PATH=/health/live to only restart a process that stopped answering (a server that
is warming up or draining is not ready, but it is alive)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("CSMSTREAM_PORT", "8000")
    path = os.environ.get("CSMSTREAM_HEALTHCHECK_PATH", "/health/ready")
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:  # 503: starting, draining or unhealthy; the body says why
        print(f"{url}: {exc.code} {exc.read(300).decode(errors='replace')}", file=sys.stderr)
        return 1
    except OSError as exc:  # refused, timed out: the server is not answering
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
