"""Issue 31's probes against the query engine of two checkouts, alternating: the time to
answer each (parse, translate and run, as `LocalEngine.query` does them) and the
engine's peak memory, the process's resident set at its highest.

Each probe runs in a process of its own, importing the engine of the checkout it
measures, on one log built for the run (`tests.aesql_fixtures.bulk_log`, the same for
both); a probe that has not answered after `--kill-s` is killed and counted as that
long. Rounds alternate which checkout goes first.

    git worktree add /tmp/before31 5f7b4c3
    .venv/bin/python bench/probes.py --before /tmp/before31 [--rounds 2] [--kill-s 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T = "hoox_telemetry"


def _subqueries(depth: int) -> str:
    return "SELECT * FROM " + "(SELECT * FROM " * (depth - 1) + T + ")" * (depth - 1) \
        + " LIMIT 1"


# (name, SQL, params): the probes, in its order, then the heaviest answers
PROBES: list[tuple[str, str, list]] = [
    ("NUL in a param", f"SELECT count() AS n FROM {T} WHERE blob1 = ?", ["a\u0000b"]),
    ("45 nested parentheses", "SELECT " + "(" * 45 + "1" + ")" * 45 + " AS v", []),
    ("40 nested if", "SELECT " + "if(1, " * 40 + "1" + ", 0)" * 40 + " AS v", []),
    ("200 ORs", f"SELECT count() AS n FROM {T} WHERE "
     + " OR ".join(["blob1 = 'x'"] * 200), []),
    ("1,000 `1+` terms", "SELECT " + "1+" * 1000 + "1 AS v", []),
    ("toDateTime(1e30)", "SELECT toDateTime(1e30) AS v", []),
    ("format('{0.__class__…}')",
     "SELECT format('{0.__class__.__base__.__subclasses__}', 'x') AS v", []),
    ("format('{:>5000000}', blob1), 4 rows",
     f"SELECT format('{{:>5000000}}', blob1) AS v FROM {T} LIMIT 4", []),
    ("LIKE of 20,000 %", f"SELECT count() AS n FROM {T} WHERE blob1 LIKE ?",
     ["%" * 20_000]),
    ("formatDateTime of 3,000 %Y, 200 rows",
     f"SELECT length(formatDateTime(timestamp, '{'%Y' * 3000}')) AS v FROM {T} LIMIT 200",
     []),
    *[(f"subqueries nested {d} deep", _subqueries(d), []) for d in (5, 8, 12, 30)],
    ("%e on the 1st", "SELECT formatDateTime(toDateTime('2026-12-01 00:00:00'), "
     "'%M %e, %Y') AS v", []),
    ("format width 1e8, 1 row (memory)",
     f"SELECT format('{{:>100000000}}', blob1) AS v FROM {T} LIMIT 1", []),
    # one value just under the 64 KiB cap (4,681 times a 14-byte index1) on each of the
    # row cap's 10,000 rows
    ("10,000 rows of 64 KiB values (memory)",
     f"SELECT format('{'{0}' * 4681}', index1) AS v FROM {T} LIMIT 10000", []),
]


def run_one(checkout: str, db: str, index: int, timeout_ms: int) -> None:
    """In the child: one probe on `checkout`'s engine; one JSON line out."""
    sys.path.insert(0, checkout)
    from storage.query.aesql import LocalEngine

    import storage
    assert Path(storage.__file__).resolve().is_relative_to(Path(checkout).resolve())
    name, sql, params = PROBES[index]
    engine = LocalEngine(db, timeout_ms=timeout_ms, now=lambda: 1_795_542_990)
    engine.query(f"SELECT count() AS n FROM {T}")  # the connection, opened
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    try:
        result = engine.query(sql, params)
        size = sum(len(str(v)) for row in result.rows for v in row.values())
        outcome = f"{len(result.rows)} rows, {size:,} chars"
        if len(result.rows) == 1 and size < 40:
            outcome = json.dumps(result.rows[0], ensure_ascii=True)
    except Exception as e:  # noqa: BLE001 - the outcome is what is measured
        outcome = f"{type(e).__name__}: {str(e).removeprefix('Input was invalid: ')[:90]}"
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s": elapsed, "outcome": outcome, "peak_mb": peak,
                      "base_mb": base}))


def measure(checkout: str, db: str, index: int, timeout_ms: int, kill_s: float) -> dict:
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, __file__, "--one", checkout, db, str(index),
                               str(timeout_ms)], capture_output=True, text=True,
                              timeout=kill_s)
    except subprocess.TimeoutExpired:
        return {"s": kill_s, "outcome": f"no answer in {kill_s:.0f} s (killed)",
                "killed": True}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"s": time.monotonic() - started, "outcome": f"crashed: {last[:90]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="/tmp/before31")
    parser.add_argument("--after", default=str(ROOT))
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout-ms", type=int, default=5000)
    parser.add_argument("--kill-s", type=float, default=30.0)
    parser.add_argument("--only", help="probes whose name holds this text")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.aesql_fixtures import bulk_log

    work = Path(tempfile.mkdtemp(prefix="probes-"))
    db = bulk_log(work / "probes.db", args.events)
    chosen = [i for i, p in enumerate(PROBES) if not args.only or args.only in p[0]]
    sides = {"before": args.before, "after": args.after}
    results: dict[tuple[int, str], list[dict]] = {}
    started = time.monotonic()
    for r in range(args.rounds):
        for i in chosen:
            for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
                m = measure(sides[side], db, i, args.timeout_ms, args.kill_s)
                results.setdefault((i, side), []).append(m)
                print(f"round {r + 1} {side:6} {PROBES[i][0]:40} {m['s']:7.2f} s  "
                      f"{m.get('peak_mb', 0):6.0f} MB  {m['outcome']}", file=sys.stderr)
    print(f"\n{args.events:,} events, time limit {args.timeout_ms} ms, {args.rounds} rounds, "
          f"{time.monotonic() - started:.0f} s in all; worst of the rounds:\n")
    print("| probe | before: worst time | before: peak RSS | before: answer "
          "| after: worst time | after: peak RSS | after: answer |")
    print("| --- | ---: | ---: | --- | ---: | ---: | --- |")
    for i in chosen:
        cells = []
        for side in ("before", "after"):
            runs = results[(i, side)]
            worst = max(runs, key=lambda m: m["s"])
            time_text = (f"≥ {worst['s']:.0f} s" if worst.get("killed")
                         else f"{worst['s']:.2f} s")
            peak = max((m.get("peak_mb", 0) for m in runs), default=0)
            cells += [time_text, f"{peak:.0f} MB" if peak else "–",
                      worst["outcome"].replace("|", "\\|")]
        print(f"| {PROBES[i][0]} | " + " | ".join(cells) + " |")
    for p in work.iterdir():
        p.unlink()
    os.rmdir(work)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        run_one(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
