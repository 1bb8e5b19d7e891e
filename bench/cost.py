"""What the whole service costs (SPEC §12.1): every process gunicorn's master runs.

For each log size (0 = a new log with one event; N = `bench/biglog.py`'s N api-calls over
the 30 days ending now, built anew for each run, so that replay and the mirror start
from nothing, as after an import), the service is started as `./run.sh` starts it
(gunicorn_conf, 2 workers, sink stdout to /dev/null, the mirror as configured) and:

- time to rest: from the start until a 10 s window of the process tree's CPU stays under
  1% of one core (bounded by --settle-max; "never" past it);
- CPU at rest: the next --rest-seconds, all processes, in % of one core;
- resident memory per process (RSS, and PSS, which counts shared pages once);
- `GET /health`, `/status`, `/metrics` and each dashboard query: median and p99 of the
  answer's time seen by the client, one at a time;
- CPU under 20 single posts a second for --post-seconds, all processes;
- one chromium tab open on the dashboard (24 h, then 30 d) for --tab-seconds, against the
  same time with none, alternating: CPU above rest.

CPU is utime + stime from /proc for the master and every descendant (the writer, the
mirror, the workers). With --before DIR the same runs are made on the code in DIR (a
worktree of an earlier commit), one after the other for each size, in the same run.

    flock /tmp/bench.lock .venv/bin/python bench/cost.py --logs 0,1000000,10000000 \\
        [--before /tmp/before] [--rest-seconds 30] [--settle-max 300] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import dashboard  # noqa: E402
from bench.biglog import build  # noqa: E402

KEY = "bench-key"
AUTH = {"X-Internal-Auth-Key": KEY}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- processes -----------------------------------------------------------------------------

def tree(root: int) -> list[int]:
    """`root` and all its descendants, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    total = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def cpu_by_role(master: int) -> dict[str, float]:
    """CPU seconds so far of each kind of process (workers added up)."""
    out: dict[str, float] = {}
    for pid in tree(master):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = role(pid, master)
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def shares(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    return ", ".join(f"{name} {100 * (after[name] - before.get(name, 0.0)) / seconds:.2f}"
                     for name in sorted(after))


def settle(root: int, bound_s: float) -> float | None:
    """Seconds until a 10 s window of the tree's CPU stays under 1% of one core (None:
    not within `bound_s`)."""
    began = time.monotonic()
    while time.monotonic() - began < bound_s:
        if cpu_share(root, 10) < 1.0:
            return time.monotonic() - began
    return None


def cpu_share(root: int, seconds: float) -> float:
    """% of one core the tree used over the next `seconds`."""
    before, began = cpu_seconds(root), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(root) - before) / (time.monotonic() - began)


def role(pid: int, master: int) -> str:
    if pid == master:
        return "master"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    if "storage.writer.process" in cmd:
        return "writer"
    if "storage.query.mirror_process" in cmd:
        return "mirror"
    return "worker"


def memory(master: int) -> list[tuple[str, float, float]]:
    """(role, RSS MB, PSS MB) of every process of the service."""
    out = []
    for pid in tree(master):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        kb = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:]
              if line.split()[-1] == "kB"}
        out.append((role(pid, master), kb.get("Rss", 0) / 1024, kb.get("Pss", 0) / 1024))
    return sorted(out)


# -- the service ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """The service as ./run.sh starts it, from the checkout `code`."""

    def __init__(self, code: Path, db: Path, work: Path):
        self.code, self.db, self.work = code, db, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
        env.update({"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(self.db),
                    "ANALYTICS_MIRROR_DIR": str(self.work / "mirror"),
                    "PYTHONPATH": str(self.code)})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "app:create_app()"],
            cwd=self.code, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.work / "gunicorn.log", "ab"), start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.work / "gunicorn.log").read_text())
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def post_one(client: httpx.Client) -> None:
    body = {"requestId": f"cost-{uuid.uuid4()}",
            "payload": {"worker": "trade-worker", "endpoint": "/webhook",
                        "latencyMs": 12.5, "success": True}}
    r = client.post("/track/api-call", json=body)
    assert r.status_code == 200, r.text


def timed(client: httpx.Client, method: str, path: str, body: Any, repeat: int
          ) -> tuple[float, float, int]:
    """(median ms, p99 ms, errors) of `repeat` requests, one at a time."""
    times, errors = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        r = client.request(method, path, json=body)
        times.append((time.perf_counter() - began) * 1000)
        errors += r.status_code != 200
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], errors


def requests_to_time(repeat: int) -> dict[str, tuple[str, str, Any, int]]:
    queries = dashboard.load_queries()
    page = queries["layouts"]["profile"]

    def q(name: str, r: dict[str, Any]) -> dict[str, str]:
        return {"query": dashboard.expand(page[name], "hoox_telemetry", r["since"],
                                          r["bucket"])}

    out: dict[str, tuple[str, str, Any, int]] = {
        "GET /health": ("GET", "/health", None, repeat),
        "GET /status": ("GET", "/status", None, repeat),
        "GET /metrics": ("GET", "/metrics", None, repeat),
        "health query (15 min)": ("POST", "/query", q("health", queries["ranges"][0]), repeat),
    }
    for r in queries["ranges"]:
        n = max(3, repeat // 5) if r["name"] in ("1h", "24h") else 3
        for name in ("latency", "volume"):
            out[f"{name} {r['label']}"] = ("POST", "/query", q(name, r), n)
    return out


def tab_cost(service: Service, range_name: str, seconds: float) -> tuple[float, float]:
    """(CPU % with a tab open on `range_name`, CPU % with none), each over `seconds`."""
    from playwright.sync_api import sync_playwright

    master = service.proc.pid
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        idle = cpu_share(master, seconds)
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{service.url}/#range={range_name}")
        page.get_by_label("Internal key").fill(KEY)
        page.get_by_role("button", name="Open dashboard").click()
        page.locator("#latency path.series").first.wait_for(state="attached", timeout=120_000)
        time.sleep(2)  # the first load's chart queries are done
        open_ = cpu_share(master, seconds)
        context.close()
        browser.close()
    return open_, idle


def run(code: Path, log: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure for the code in `code` on a fresh copy of `log` ('0': a new log)."""
    work = Path(tempfile.mkdtemp(prefix="bench-cost-", dir=args.work))
    db = work / "analytics.db"
    if log != "0":  # 1M events take about 7 s, 10M about 65 s
        build(db, int(log), end_s=int(time.time()))
    result: dict[str, Any] = {"code": str(code), "log": log}
    began = time.monotonic()
    service = Service(code, db, work).start()
    try:
        master = service.proc.pid
        with httpx.Client(base_url=service.url, headers=AUTH, timeout=120) as client:
            if log == "0":
                post_one(client)
            # caught up: a 10 s window under 1% of one core
            settled = settle(master, args.settle_max - (time.monotonic() - began))
            result["settle_s"] = None if settled is None else time.monotonic() - began
            parts = cpu_by_role(master)
            result["rest_pct"] = cpu_share(master, args.rest_seconds)
            result["rest_by"] = shares(parts, cpu_by_role(master), args.rest_seconds)
            result["memory"] = memory(master)
            for name, (method, path, body, n) in requests_to_time(args.repeat).items():
                timed(client, method, path, body, 1)  # warm
                result[name] = timed(client, method, path, body, n)
            # 20 single posts a second, paced, bounded by --post-seconds
            stop = time.monotonic() + args.post_seconds
            before = cpu_seconds(master)
            parts = cpu_by_role(master)
            t0 = time.monotonic()
            sent = 0
            while time.monotonic() < stop:
                post_one(client)
                sent += 1
                time.sleep(max(0.0, t0 + sent / 20 - time.monotonic()))
            result["posts_pct"] = 100 * (cpu_seconds(master) - before) / (time.monotonic() - t0)
            result["posts_sent"] = sent
            result["posts_by"] = shares(parts, cpu_by_role(master), time.monotonic() - t0)
            for r in ("24h", "30d"):
                settle(master, 60)  # what the posts left to do (replay, the mirror's copy)
                result[f"tab {r}"] = tab_cost(service, r, args.tab_seconds)
            result["memory_after"] = memory(master)
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def show(result: dict[str, Any]) -> None:
    print(f"\n== {result['code']} on {result['log']}")
    settle = result["settle_s"]
    print(f"  time to rest after start: {'never within the bound' if settle is None else f'{settle:.0f} s'}")
    print(f"  CPU at rest: {result['rest_pct']:.2f} % of one core ({result['rest_by']})")
    for label in ("memory", "memory_after"):
        rows = result[label]
        total_rss = sum(r for _, r, _ in rows)
        total_pss = sum(p for _, _, p in rows)
        parts = ", ".join(f"{name} {rss:.0f}" for name, rss, _ in rows)
        print(f"  {label}: RSS {total_rss:.0f} MB ({parts}); PSS {total_pss:.0f} MB")
    for name in requests_to_time(1):
        med, p99, errors = result[name]
        print(f"  {name:<24} median {med:9.1f} ms  p99 {p99:9.1f} ms"
              + (f"  ({errors} errors)" if errors else ""))
    print(f"  CPU under 20 posts/s: {result['posts_pct']:.2f} % ({result['posts_sent']} posts;"
          f" {result['posts_by']})")
    for r in ("24h", "30d"):
        open_, idle = result[f"tab {r}"]
        print(f"  one tab open ({r}): {open_:.2f} % against {idle:.2f} % with none: "
              f"+{open_ - idle:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", default="0", help="comma-separated sizes of log (0: new)")
    parser.add_argument("--before", help="a checkout of the code to compare with")
    parser.add_argument("--rest-seconds", type=float, default=30)
    parser.add_argument("--settle-max", type=float, default=300)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--post-seconds", type=float, default=20)
    parser.add_argument("--tab-seconds", type=float, default=20)
    parser.add_argument("--work", default=None, help="where the logs are built")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    results = []
    for log in args.logs.split(","):
        codes = [ROOT] + ([Path(args.before).resolve()] if args.before else [])
        for code in codes:
            result = run(code, log, args)
            show(result)
            results.append(result)
            sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
