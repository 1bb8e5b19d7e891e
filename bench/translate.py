"""The time the query engine takes to translate queries whose GROUP BY keys are zoned
functions (each `toStartOfDay(timestamp, zone)` is a tree of a few hundred nodes), for
the engine of two checkouts, alternating: translation alone (parse, check, write the
SQLite), no log read. CPU seconds of a process of its own per checkout and round.

    git worktree add /tmp/before34 <commit>
    .venv/bin/python bench/translate.py --before /tmp/before34 [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T = "hoox_telemetry"
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney")

# (name, SQL of one zone): each is translated once per zone per repeat
QUERIES = [
    ("events per local day", "SELECT toStartOfDay(timestamp, '{z}') AS d, count() AS n "
     f"FROM {T} GROUP BY d ORDER BY d"),
    ("per local hour of day", "SELECT toHour(timestamp, '{z}') AS h, count() AS n "
     f"FROM {T} GROUP BY h ORDER BY h"),
    ("two zoned keys", "SELECT toStartOfDay(timestamp, '{z}') AS d, "
     "toStartOfInterval(timestamp, INTERVAL 1 DAY, '{z}') AS i, count() AS n "
     f"FROM {T} GROUP BY d, i ORDER BY d"),
]

CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from storage.query.aesql.parse import parse
from storage.query.aesql.translate import Translator
queries, zones, repeat = json.loads(sys.argv[2])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
out = {}
for name, sql in queries:
    Translator("hoox_telemetry").select(parse(sql.format(z=zones[0]), ()).tree)  # warm
    start = cpu()
    for _ in range(repeat):
        for z in zones:
            Translator("hoox_telemetry").select(parse(sql.format(z=z), ()).tree)
    out[name] = (cpu() - start) / (repeat * len(zones))
print(json.dumps(out))
"""


def measure(checkout: Path, repeat: int) -> dict[str, float]:
    args = json.dumps([QUERIES, ZONES, repeat])
    done = subprocess.run([sys.executable, "-c", CHILD, str(checkout), args],
                          capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(args.rounds):
        order = [("before", args.before), ("after", ROOT)]
        for label, checkout in (order if i % 2 == 0 else order[::-1]):
            runs[label].append(measure(checkout, args.repeat))
    print("| query | before: ms | after: ms | after / before |")
    print("| --- | ---: | ---: | ---: |")
    for name, _ in QUERIES:
        before = sorted(r[name] for r in runs["before"])[len(runs["before"]) // 2] * 1000
        after = sorted(r[name] for r in runs["after"])[len(runs["after"]) // 2] * 1000
        print(f"| {name} | {before:.0f} | {after:.0f} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
