"""Bytes the log takes per api-call event: N envelope-shaped events, each appended alone
(as /track/api-call does), through the real parser and log, then the WAL checkpointed and
the file's pages counted (the table and both of its indexes).

    .venv/bin/python bench/log_bytes.py [--events 100000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.intake.events import EventParser  # noqa: E402
from storage.log import EventLog  # noqa: E402

WORKERS = ["trade-worker", "hoox", "d1-worker", "web3-wallet-worker", "telegram-worker"]
ENDPOINTS = ["/webhook", "/api/trade", "/query", "/balance", "/notify"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(1)
    path = Path(tempfile.mkdtemp()) / "bytes.db"
    log = EventLog(path)
    events = EventParser(lambda: str(uuid.uuid4()))
    start_ms = 1_764_000_000_000
    for i in range(args.events):
        body = {"requestId": str(uuid.UUID(int=rng.getrandbits(128))),
                "payload": {"worker": rng.choice(WORKERS), "endpoint": rng.choice(ENDPOINTS),
                            "latencyMs": round(rng.lognormvariate(3.2, 0.9), 3),
                            "success": rng.random() > 0.1}}
        log.append([events.one(body, start_ms + i * 37)])
    log.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = log.conn.execute("PRAGMA page_count").fetchone()[0]
    size = log.conn.execute("PRAGMA page_size").fetchone()[0]
    per_object = log.conn.execute(
        "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    log.close()
    print(f"{args.events:,} api-call events: {pages * size / args.events:.1f} bytes/event "
          f"({pages * size:,} bytes)")
    for name, total in per_object:
        print(f"  {name:28} {total / args.events:7.1f} bytes/event")


if __name__ == "__main__":
    main()
