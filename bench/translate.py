"""The time the query engine takes to compile queries whose keys are zoned functions
(each `toStartOfDay(timestamp, zone)` is a tree of hundreds of comparisons), for the
engine of two checkouts, alternating: `compile_select` (parse, check, translate, write
the SQLite text), no log read. CPU seconds of a process of its own per checkout and
round.

- "first": the query's first compile in a zone nothing compiled before in its process
  (a worker's first query in that zone);
- "again": the same query again in zones already used (a new query in a zone a worker
  has seen is between the two);
- the zoned function of a zoned function is refused by its size, both times.

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

# (name, SQL of one zone, the zone of its first compile): each query is compiled once in
# its own first zone, then once per zone of ZONES to warm them, then `repeat` times more
QUERIES = [
    ("events per local day", "SELECT toStartOfDay(timestamp, '{z}') AS d, count() AS n "
     f"FROM {T} GROUP BY d ORDER BY d", "Europe/Paris"),
    ("per local hour of day", "SELECT toHour(timestamp, '{z}') AS h, count() AS n "
     f"FROM {T} GROUP BY h ORDER BY h", "America/Chicago"),
    ("two zoned keys", "SELECT toStartOfDay(timestamp, '{z}') AS d, "
     "toStartOfInterval(timestamp, INTERVAL 1 DAY, '{z}') AS i, count() AS n "
     f"FROM {T} GROUP BY d, i ORDER BY d", "Australia/Melbourne"),
    ("a zoned day of a zoned day (refused)",
     "SELECT toStartOfDay(toStartOfDay(timestamp, '{z}'), '{z}') AS d FROM " + T,
     "Europe/Rome"),
]

CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from storage.query.aesql.engine import compile_select
from storage.query.aesql.errors import InvalidQuery
queries, zones, repeat = json.loads(sys.argv[2])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def compile(sql):
    try:
        compile_select(sql)
    except InvalidQuery as e:
        assert "expands to more than" in str(e), e
out = {}
for name, sql, first in queries:
    start = cpu()
    compile(sql.format(z=first))
    out[name + ", first"] = cpu() - start
    for z in zones:
        compile(sql.format(z=z))
    start = cpu()
    for _ in range(repeat):
        for z in zones:
            compile(sql.format(z=z))
    out[name + ", again"] = (cpu() - start) / (repeat * len(zones))
print(json.dumps(out))
"""


def measure(checkout: Path, repeat: int) -> dict[str, float]:
    args = json.dumps([QUERIES, ZONES, repeat])
    done = subprocess.run([sys.executable, "-c", CHILD, str(checkout), args],
                          capture_output=True, text=True, check=True, timeout=1800)
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
    for name in runs["after"][0]:
        before = sorted(r[name] for r in runs["before"])[len(runs["before"]) // 2] * 1000
        after = sorted(r[name] for r in runs["after"])[len(runs["after"]) // 2] * 1000
        print(f"| {name} | {before:.1f} | {after:.1f} | {after / before:.3f} |")


if __name__ == "__main__":
    main()
