"""Replay throughput to a loopback relay against single-event ingest throughput, measured
in the same run on the same machine (target: replay >= 5x ingest, so that replay catches
up after an outage while events keep arriving).

    .venv/bin/python bench/replay.py [--rounds 3] [--seconds 5]

Each round, alternating:
1. ingest: wrk POSTs distinct single events to /track/api-call of the service under
   gunicorn (2 workers as gunicorn_conf sets them, ANALYTICS_SINK=none) for --seconds: events/s acknowledged;
2. replay: the `Replayer` drains exactly those events from that log to a loopback relay
   (another process speaking SPEC §6: it parses each batch and checks every point
   against the limits, as the relay Worker does) over HTTP: events/s confirmed.
3. ingest again with ANALYTICS_SINK=relay, so each worker's background replayer runs
   during the load: ingest events/s with replay on, and whether replay kept up.

Needs wrk (apt-get install wrk). The machine is shared: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.ingest import KEY, Gunicorn, free_port, wrk  # noqa: E402
from storage.log import EventLog  # noqa: E402
from storage.replay import Replayer, backlog  # noqa: E402
from storage.replay.sink import RelaySink  # noqa: E402

RELAY_KEY = "bench-relay-key"


# -- the loopback relay, in its own process so it does not share the replayer's GIL -------

def serve_relay(port: int) -> None:
    from standin import check_point

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without this, Nagle's algorithm and
            # the client's delayed ACK add 40 ms to every answer.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            points = json.loads(body)["points"]
            bad = [i for i, p in enumerate(points) if check_point(p)]
            ok = self.headers.get("X-Internal-Auth-Key") == RELAY_KEY and not bad
            out = json.dumps({"success": ok, "written": len(points) if ok else 0}).encode()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a gunicorn worker stopped mid-request: nothing to report

    server = Server(("127.0.0.1", port), Relay)
    server.serve_forever()


def start_relay() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-relay", str(port)],
                            cwd=ROOT)
    url = f"http://127.0.0.1:{port}/ingest"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.post(url, json={"points": []}, headers={"X-Internal-Auth-Key": RELAY_KEY})
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the loopback relay did not start")


# -- measurements ------------------------------------------------------------------------

def ingest_rate(env: dict[str, str], seconds: int, connections: int, tag: str) -> float:
    service = Gunicorn("app:create_app()", env)
    try:
        wrk(service.url, 1, connections, f"{tag}-warm")
        return wrk(service.url, seconds, connections, tag)["rate"]
    finally:
        service.stop()


def replay_rate(db_path: Path, relay_url: str) -> tuple[float, int]:
    log = EventLog(db_path)
    try:
        with httpx.Client() as http:
            sink = RelaySink(relay_url, RELAY_KEY, http=http, timeout_ms=5000,
                             clock=time.time)
            replayer = Replayer(log, sink, holder=f"bench:{os.getpid()}")
            pending = backlog(log, "relay").events
            started = time.perf_counter()
            result = replayer.drain(max_failures=1)
            elapsed = time.perf_counter() - started
            replayer.release()
    finally:
        log.close()
    if not result.drained or result.sent != pending:
        raise RuntimeError(f"replay did not drain: {result}")
    return result.sent / elapsed, result.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve-relay", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_relay:
        serve_relay(args.serve_relay)
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    relay, relay_url = start_relay()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    rows = []
    try:
        for r in range(args.rounds):
            db = tmp / f"round{r}.db"
            env = {**os.environ, "INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(db),
                   "ANALYTICS_SINK": "none", "PYTHONPATH": str(ROOT)}
            ingest = ingest_rate(env, args.seconds, args.connections, f"i{r}")
            replay, events = replay_rate(db, relay_url)

            live_db = tmp / f"live{r}.db"
            live_env = {**env, "ANALYTICS_DB": str(live_db), "ANALYTICS_SINK": "relay",
                        "ANALYTICS_RELAY_URL": relay_url, "ANALYTICS_RELAY_KEY": RELAY_KEY}
            live = ingest_rate(live_env, args.seconds, args.connections, f"l{r}")
            log = EventLog(live_db)
            left = backlog(log, "relay").events
            total = log.count()
            log.close()
            rows.append((ingest, replay, events, live, left, total))
            print(f"round {r + 1}: ingest {ingest:,.0f} events/s; replay {replay:,.0f} "
                  f"events/s ({events:,} events) = {replay / ingest:.1f}x ingest; ingest "
                  f"with replay on {live:,.0f} events/s = {live / ingest:.2f}x, backlog at "
                  f"stop {left} of {total:,}", flush=True)
    finally:
        relay.kill()
        relay.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = statistics.median(r[1] / r[0] for r in rows)
    live_ratio = statistics.median(r[3] / r[0] for r in rows)
    print(f"replay vs single-event ingest: {ratio:.1f}x (median of {args.rounds} rounds; "
          f"target >= 5x)")
    print(f"ingest with the background replayer on vs off: {live_ratio:.2f}x")


if __name__ == "__main__":
    main()
