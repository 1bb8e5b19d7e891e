"""What one /track/api-call request costs inside the process, without gunicorn or a socket:
the ASGI app is called directly, on one asyncio event loop, against the ASGI no-op route of
bench/noop_app.py, `--concurrency` requests at a time (so that the service's group commit
groups them as under load; 1 gives a commit per request).

    .venv/bin/python bench/request_cost.py [--requests 5000] [--rounds 5] [--concurrency 32]

prints microseconds per request for both, alternating, and their difference.
`--writer-process` commits through the service's writer process, as under gunicorn, and
also prints the CPU time each request costs the worker and the writer. Timings on a
shared machine move; instruction counts do not. For those, run one app under callgrind
with and without requests and divide the difference:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/request_cost.py --app service --requests 3000
    (the same with --requests 0)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from bench import noop_app  # noqa: E402
from storage.config import Config  # noqa: E402
from storage.writer.process import Supervisor  # noqa: E402

KEY = "bench-key"
ASGIApp = Callable[..., Awaitable[None]]
HEADERS = [(b"content-type", b"application/json"), (b"x-internal-auth-key", KEY.encode()),
           (b"host", b"127.0.0.1")]


async def call(app: ASGIApp, body: bytes) -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/track/api-call",
             "raw_path": b"/track/api-call", "query_string": b"", "root_path": "",
             "headers": HEADERS + [(b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8787)}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    if status != 200:
        raise RuntimeError(f"request failed: {status}")


def run(app: ASGIApp, requests: int, tag: str, concurrency: int = 32) -> float:
    """Microseconds per request for `requests` distinct events."""
    bodies = [(b'{"requestId":"%s-%d","payload":{"worker":"trade-worker",'
               b'"endpoint":"/webhook","latencyMs":24.5,"success":true}}'
               % (tag.encode(), i)) for i in range(requests)]

    async def all_of_them() -> None:
        for i in range(0, len(bodies), concurrency):
            await asyncio.gather(*(call(app, b) for b in bodies[i:i + concurrency]))

    start = time.perf_counter()
    asyncio.run(all_of_them())
    return (time.perf_counter() - start) / max(requests, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--app", choices=["both", "noop", "service"], default="both")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--writer-process", action="store_true",
                        help="commit through the writer process, as under gunicorn")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-request-")
    env = {"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_SINK": "none",
           "ANALYTICS_DB": os.path.join(tmp, "a.db")}
    config = Config.from_env(env)
    supervisor = None
    if args.writer_process:
        supervisor = Supervisor(os.path.join(tmp, "writer.sock"),
                                env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
        supervisor.start()
    apps: dict[str, ASGIApp] = {}
    if args.app in ("both", "noop"):
        apps["noop"] = noop_app.create_asgi_app()
    if args.app in ("both", "service"):
        apps["service"] = create_app(
            config, background=False,
            writer_socket=supervisor.socket_path if supervisor else None)
    for name, app in apps.items():
        run(app, 1000, f"warm-{name}", args.concurrency)  # opens the log, fills caches
    if args.app != "both":
        run(apps[args.app], args.requests, "measured", args.concurrency)
        return
    costs: dict[str, list[float]] = {name: [] for name in apps}
    cpu: dict[str, list[float]] = {"worker": [], "writer": []}
    for r in range(args.rounds):
        for name, app in apps.items():
            worker_before, writer_before = time.process_time(), _cpu_s(supervisor)
            costs[name].append(run(app, args.requests, f"{name}-{r}", args.concurrency))
            if name == "service":
                cpu["worker"].append((time.process_time() - worker_before) / args.requests)
                cpu["writer"].append((_cpu_s(supervisor) - writer_before) / args.requests)
    if supervisor is not None:
        supervisor.stop()
    noop, service = (statistics.median(costs[n]) for n in ("noop", "service"))
    print(f"no-op route: {noop:.1f} us/request; /track/api-call: {service:.1f} us/request; "
          f"difference {service - noop:.1f} us (medians of {args.rounds} rounds of "
          f"{args.requests}, {args.concurrency} at a time)")
    if supervisor is not None:
        print(f"CPU per /track/api-call request: this process "
              f"{statistics.median(cpu['worker']) * 1e6:.1f} us, the writer process "
              f"{statistics.median(cpu['writer']) * 1e6:.1f} us")


def _cpu_s(supervisor: Any) -> float:
    """User and system CPU seconds of the writer process so far (0 without one)."""
    if supervisor is None or supervisor.pid is None:
        return 0.0
    fields = Path(f"/proc/{supervisor.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
