"""Events for the dashboard's tests and benchmarks: a day of api-calls before a given
time, loaded through `analytics-worker import` as a user would, and the helpers that send
error spikes through the real HTTP API."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import cli
from conftest import HTTP

WORKERS = ["trade-worker", "hoox", "d1-worker", "email-worker"]


def history(end_s: float, n: int = 2000, hours: int = 24, quiet_s: int = 120,
            seed: int = 11) -> list[dict[str, Any]]:
    """`n` api-calls from ten minutes after `end_s - hours` (none leaves a window of `hours`
    while a test compares the page with /query) to `end_s - quiet_s` (the last minutes are
    empty, so a test decides what the banner sees)."""
    rng = random.Random(seed)
    stop_ms = int((end_s - quiet_s) * 1000)
    start_ms = int((end_s - hours * 3600 + 600) * 1000)
    records = []
    for i, ms in enumerate(sorted(rng.randrange(start_ms, stop_ms) for _ in range(n))):
        worker = WORKERS[i % len(WORKERS)]
        base = {"trade-worker": 40, "hoox": 12, "d1-worker": 25, "email-worker": 80}[worker]
        when = datetime.fromtimestamp(ms / 1000, timezone.utc)
        records.append({
            "requestId": f"hist-{i:06d}", "type": "api-call",
            "receivedAt": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z",
            "payload": {"worker": worker, "endpoint": "/webhook",
                        "latencyMs": round(rng.lognormvariate(math.log(base), 0.5), 3),
                        "success": rng.random() > 0.06}})
    return records


def import_records(db: Path, records: list[dict[str, Any]], workdir: Path) -> None:
    source = workdir / "history.ndjson"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["import", "--db", str(db), str(source)],
                                env={"INTERNAL_KEY_BINDING": "test-key"})
    assert result.exit_code == 0, result.output


def send(url: str, key: str, worker: str, n: int, success: bool, tag: str) -> None:
    """`n` api-calls in one batch (all committed when this returns)."""
    for first in range(0, n, 1000):
        events = [{"requestId": f"{tag}-{i}", "payload": {
            "worker": worker, "endpoint": "/webhook", "latencyMs": 5.0, "success": success}}
            for i in range(first, min(n, first + 1000))]
        response = HTTP.post(f"{url}/track/batch", json={"events": events},
                             headers={"X-Internal-Auth-Key": key}, timeout=30)
        assert response.status_code == 200, response.text


def last_minute(url: str, key: str, query: str) -> tuple[int, int]:
    """(calls, errors) of the last 60 s, from the page's own health query."""
    response = HTTP.post(f"{url}/query", json={"query": query, "source": "local"},
                         headers={"X-Internal-Auth-Key": key}, timeout=30)
    rows = response.json()["results"]
    return (sum(int(r["calls_60s"]) for r in rows), sum(int(r["errors_60s"]) for r in rows))


def calm_down(url: str, key: str, query: str, tag: str) -> None:
    """Successful calls enough to bring the last minute's error rate under 5 %."""
    calls, errors = last_minute(url, key, query)
    needed = max(1, errors * 20 - calls + 10)
    send(url, key, "hoox", needed, True, tag)
