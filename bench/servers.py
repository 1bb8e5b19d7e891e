"""The no-op route under the serving models considered, side by side: 2 sync workers,
2 gthread workers with 4 threads, 2 of uvicorn's workers running the ASGI no-op route.
Alternating rounds of wrk (bench/post.lua) at 8 and 64 connections; medians.

    flock /tmp/bench.lock .venv/bin/python bench/servers.py [--rounds 4] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import ROOT, Gunicorn, wrk  # noqa: E402

SERVERS = {
    "sync": ("bench.noop_app:create_app()", ["--worker-class", "sync"]),
    "gthread, 4 threads": ("bench.noop_app:create_app()",
                           ["--worker-class", "gthread", "--threads", "4"]),
    "uvicorn's worker (ASGI)": ("bench.noop_app:create_asgi_app()",
                                ["--worker-class", "uvicorn_worker.UvicornWorker"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "INTERNAL_KEY_BINDING": "bench-key", "PYTHONPATH": str(ROOT)}
    servers: dict[str, Gunicorn] = {}
    try:
        for name, (app, extra) in SERVERS.items():
            servers[name] = Gunicorn(app, env, extra)
        for c in (8, 64):
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for r in range(args.rounds):
                for name, server in servers.items():
                    runs[name].append(wrk(server.url, args.seconds, c, f"r{r}"))
            for name, rows in runs.items():
                print(f"c={c} {name}: {statistics.median(x['rate'] for x in rows):,.0f} req/s, "
                      f"median {statistics.median(x['p50'] for x in rows):.2f} ms, "
                      f"p99 {statistics.median(x['p99'] for x in rows):.2f} ms", flush=True)
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
