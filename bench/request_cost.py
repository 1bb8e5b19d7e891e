"""What one /track/api-call request costs inside the process, without gunicorn or a socket:
the app is called as WSGI, against the no-op route of bench/noop_app.py.

    .venv/bin/python bench/request_cost.py [--requests 5000] [--rounds 5]

prints microseconds per request for both, alternating, and their difference. Timings on a
shared machine move; instruction counts do not. For those, run one app under callgrind
with and without requests and divide the difference:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/request_cost.py --app service --requests 3000
    (the same with --requests 0)
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from bench import noop_app  # noqa: E402
from storage.config import Config  # noqa: E402

KEY = "bench-key"
WSGIApp = Callable[[dict, Callable[..., Any]], Any]


def environ(body: bytes) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/track/api-call", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8787",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_INTERNAL_AUTH_KEY": KEY}


def start_response(status: str, headers: list, exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"request failed: {status}")


def run(app: WSGIApp, requests: int, tag: str) -> float:
    """Microseconds per request for `requests` distinct events."""
    bodies = [(b'{"requestId":"%s-%d","payload":{"worker":"trade-worker",'
               b'"endpoint":"/webhook","latencyMs":24.5,"success":true}}'
               % (tag.encode(), i)) for i in range(requests)]
    start = time.perf_counter()
    for body in bodies:
        b"".join(app(environ(body), start_response))
    return (time.perf_counter() - start) / max(requests, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--app", choices=["both", "noop", "service"], default="both")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-request-")
    config = Config.from_env({"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SINK": "none",
                              "ANALYTICS_DB": os.path.join(tmp, "a.db")})
    apps: dict[str, WSGIApp] = {}
    if args.app in ("both", "noop"):
        apps["noop"] = noop_app.create_app()
    if args.app in ("both", "service"):
        apps["service"] = create_app(config, background=False)
    for name, app in apps.items():
        run(app, 1000, f"warm-{name}")  # opens the log, fills caches
    if args.app != "both":
        run(apps[args.app], args.requests, "measured")
        return
    costs: dict[str, list[float]] = {name: [] for name in apps}
    for r in range(args.rounds):
        for name, app in apps.items():
            costs[name].append(run(app, args.requests, f"{name}-{r}"))
    noop, service = (statistics.median(costs[n]) for n in ("noop", "service"))
    print(f"no-op route: {noop:.1f} us/request; /track/api-call: {service:.1f} us/request; "
          f"difference {service - noop:.1f} us (medians of {args.rounds} rounds of "
          f"{args.requests})")


if __name__ == "__main__":
    main()
