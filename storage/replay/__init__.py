"""Replay of the log to a sink (SPEC §5), and the audit of what the sink holds.

`replayer` sends the backlog in batches (`Replayer`, and the `ReplayLoop` of each server
process) under the one `lease`; `state` reads the cursor, the backlog, the dead letters and
the status; `sink` is where points go (the relay, stdout, nowhere); `audit` compares the
log with Cloudflare per time bucket.

In: the log's events as data points. Out: points to the sink, the cursor moved."""

from .lease import Lease, LeaseInfo, LeaseLost, read_lease
from .replayer import IDLE_MAX_S, Backoff, DrainResult, Replayer, ReplayLoop, Tick
from .state import (Backlog, Pending, ReplayState, backlog, dead_letters, lag_ms, pending,
                    pending_all, points_between, read_state, status)

__all__ = [
    "Backlog", "Backoff", "DrainResult", "IDLE_MAX_S", "Lease", "LeaseInfo", "LeaseLost",
    "Pending", "ReplayLoop", "ReplayState", "Replayer", "Tick", "backlog", "dead_letters",
    "lag_ms", "pending", "pending_all", "points_between", "read_lease", "read_state",
    "status",
]
