"""The bodies the Hoox platform's workers send (SPEC §9), each with the data point it must
become, slot by slot, written out by hand from the SPEC's table (not computed by the code
under test). `index1` None: a fresh UUID. `double4`, the received time, is checked apart."""

from __future__ import annotations

from typing import Any, NamedTuple

LONG_ERROR = "Order rejected by exchange: " + "insufficient margin; " * 14  # 300+ chars
assert len(LONG_ERROR) > 300


class Caller(NamedTuple):
    name: str
    route: str
    body: dict[str, Any]
    index1: str | None
    blobs: tuple[str, str, str, str, str]
    doubles: tuple[float, float, float]
    ignored: tuple[str, ...] = ()
    double5: float = 0.0


CALLERS = [
    Caller("trade-worker success with price", "trade",
           {"payload": {"exchange": "binance", "symbol": "BTCUSDT", "action": "buy",
                        "quantity": 0.01, "price": 64250.5, "requestId": "trade-req-1"},
            "result": {"success": True}, "latencyMs": 182},
           "trade-req-1", ("trade", "trade-worker", "success", "binance", "BTCUSDT"),
           (0.01, 64250.5, 182.0)),
    Caller("trade-worker success without price", "trade",
           {"payload": {"exchange": "bybit", "symbol": "ETHUSDT", "action": "sell",
                        "quantity": 1.5, "requestId": "trade-req-2"},
            "result": {"success": True}, "latencyMs": 95.5},
           "trade-req-2", ("trade", "trade-worker", "success", "bybit", "ETHUSDT"),
           (1.5, 0.0, 95.5)),
    Caller("trade-worker test failure with a 300-character error", "trade",
           {"payload": {"exchange": "mexc", "symbol": "SOLUSDT", "action": "buy",
                        "quantity": -2, "price": 150, "test": True},
            "result": {"success": False, "error": LONG_ERROR}},
           None, ("trade", "trade-worker", "failure", "mexc:test", "SOLUSDT"),
           (-2.0, 150.0, 0.0)),
    Caller("trade-worker failure without price", "trade",
           {"payload": {"exchange": "binance", "symbol": "BTCUSDT", "action": "sell",
                        "quantity": 0.02, "requestId": "trade-req-4"},
            "result": {"success": False, "error": "timeout"}, "latencyMs": 5000},
           "trade-req-4", ("trade", "trade-worker", "failure", "binance", "BTCUSDT"),
           (0.02, 0.0, 5000.0)),
    Caller("trade-worker /webhook probe", "api-call",
           {"worker": "trade-worker", "endpoint": "/webhook", "latencyMs": 12,
            "success": True, "indexes": ["probe-7f3a"]},
           "probe-7f3a", ("api-call", "trade-worker", "success", "/webhook", ""),
           (12.0, 0.0, 0.0)),
    Caller("hoox api-call", "api-call",
           {"worker": "hoox", "endpoint": "/api/route", "latencyMs": 33.25, "success": False},
           None, ("api-call", "hoox", "failure", "/api/route", ""), (33.25, 0.0, 0.0)),
    Caller("web3-wallet-worker api-call", "api-call",
           {"worker": "web3-wallet-worker", "endpoint": "/balance", "latencyMs": 410,
            "success": True, "indexes": ["wallet-0xabc", "chain-1"]},
           "wallet-0xabc", ("api-call", "web3-wallet-worker", "success", "/balance", ""),
           (410.0, 0.0, 0.0)),
    Caller("d1-worker SELECT with queryType", "api-call",
           {"worker": "d1-worker", "endpoint": "/query", "latencyMs": 4.5, "success": True,
            "queryType": "SELECT"},
           None, ("api-call", "d1-worker", "success", "/query", ""), (4.5, 0.0, 0.0),
           ("queryType",)),
    Caller("email-worker signal", "signal",
           {"data": {"source": "email", "type": "buy", "symbol": "BTCUSDT", "confidence": 0.85}},
           None, ("signal", "email", "pending", "buy", "BTCUSDT"), (0.85, 0.0, 0.0)),
    Caller("telegram-worker notification", "notification",
           {"data": {"type": "trade-alert", "target": "telegram", "success": True}},
           None, ("notification", "telegram", "success", "trade-alert", ""), (0.0, 0.0, 0.0)),
    Caller("worker-perf with errors", "worker-perf",
           {"data": {"worker": "trade-worker", "requests": 1200, "errors": 3, "duration": 45.5}},
           None, ("worker-perf", "trade-worker", "degraded", "", ""), (1200.0, 3.0, 45.5)),
    Caller("worker-perf without errors", "worker-perf",
           {"data": {"worker": "hoox", "requests": 800, "errors": 0, "duration": 12}},
           None, ("worker-perf", "hoox", "success", "", ""), (800.0, 0.0, 12.0)),
    # agent-worker's risk events (src/logic/housekeeping.ts, src/logic/routine.ts).
    Caller("agent-worker housekeeping, all healthy", "housekeeping",
           {"worker": "agent-worker", "checks": 4, "healthy": 4, "unhealthy": 0},
           None, ("housekeeping", "agent-worker", "success", "", ""), (4.0, 4.0, 0.0)),
    Caller("agent-worker housekeeping, one unhealthy", "housekeeping",
           {"worker": "agent-worker", "checks": 4, "healthy": 3, "unhealthy": 1},
           None, ("housekeeping", "agent-worker", "degraded", "", ""), (4.0, 3.0, 1.0)),
    Caller("agent-worker trailing stop", "trailing-stop",
           {"exchange": "binance", "symbol": "BTCUSDT", "side": "LONG", "watermark": 68000.5,
            "currentPrice": 66100, "trigger": "trailing_stop"},
           None, ("trailing-stop", "agent-worker", "LONG", "binance", "BTCUSDT"),
           (68000.5, 66100.0, 0.0)),
    Caller("agent-worker take profit", "take-profit",
           {"exchange": "bybit", "symbol": "ETHUSDT", "side": "SHORT", "entryPrice": 3500,
            "currentPrice": 3150.25, "scaledQuantity": 0.75},
           None, ("take-profit", "agent-worker", "SHORT", "bybit", "ETHUSDT"),
           (3500.0, 3150.25, 0.75)),
    Caller("agent-worker kill switch, pnlPercent as toFixed(2)", "kill-switch",
           {"trigger": "max_drawdown", "pnlPercent": "-12.34", "limit": -10,
            "totalUnrealizedPnl": -1234.5, "accountValue": 10000},
           None, ("kill-switch", "agent-worker", "max_drawdown", "", ""),
           (-12.34, -10.0, -1234.5), (), 10000.0),
    Caller("kill switch with pnlPercent as a number", "kill-switch",
           {"trigger": "max_drawdown", "pnlPercent": -7.5, "limit": -5,
            "totalUnrealizedPnl": -750, "accountValue": 10000},
           None, ("kill-switch", "agent-worker", "max_drawdown", "", ""),
           (-7.5, -5.0, -750.0), (), 10000.0),
]

# agent-worker's routes (SPEC §9), apart from the platform's analytics-worker's five.
RISK_ROUTES = ["housekeeping", "trailing-stop", "take-profit", "kill-switch"]
ROUTES = ["trade", "api-call", "worker-perf", "signal", "notification", *RISK_ROUTES]

# The platform's dashboard queries, verbatim as it sends them (SPEC §9, issue 9).
DASHBOARD_QUERIES = [
    """SELECT blob4 as endpoint, blob2 as worker, count() as call_count, AVG(double1) as avg_latency_ms,
         SUM(if(blob3 = 'success', 1, 0)) as success_count
  FROM "hoox-analytics" WHERE blob1 = 'api-call' AND blob2 = 'trade-worker'
    AND timestamp >= toDateTime('2026-08-12 10:00:00')
  GROUP BY blob4, blob2 ORDER BY call_count DESC LIMIT 50""",
    """SELECT blob2 as source, blob4 as signal_type, blob5 as symbol, count() as signal_count,
         AVG(double1) as avg_confidence
  FROM "hoox-analytics" WHERE blob1 = 'signal' AND timestamp >= toDateTime('2026-08-12 10:00:00')
  GROUP BY blob2, blob4, blob5 ORDER BY signal_count DESC LIMIT 100""",
    """SELECT blob4 as exchange, count() as trade_count,
         SUM(_sample_interval * double2) / SUM(_sample_interval) as avg_price,
         SUM(if(blob3 = 'success', 1, 0)) as success_count, SUM(if(blob3 = 'failure', 1, 0)) as failure_count
  FROM "hoox-analytics" WHERE blob1 = 'trade'
    AND timestamp >= toDateTime('2026-08-12 10:00:00') AND timestamp <= toDateTime('2026-08-19 10:00:00')
  GROUP BY blob4 ORDER BY trade_count DESC""",
    """SELECT count() as total, SUM(if(blob3 = 'success', 1, 0)) as successes,
         SUM(if(blob3 = 'failure', 1, 0)) as failures,
         if(count() = 0, 0, SUM(if(blob3 = 'success', 1, 0)) * 100.0 / count()) as success_rate
  FROM "hoox-analytics" WHERE blob1 = 'trade'""",
    """SELECT blob2 as worker, blob1 as data_type, SUM(double1) as total_requests,
         SUM(double2) as total_errors, AVG(double3) as avg_duration_ms
  FROM "hoox-analytics" WHERE blob1 = 'worker-perf' GROUP BY blob2, blob1 ORDER BY total_requests DESC""",
    # With a filter off, the platform leaves a blank line in the WHERE clause.
    """SELECT blob2 as source, blob4 as signal_type, blob5 as symbol, count() as signal_count,
         AVG(double1) as avg_confidence
  FROM "hoox-analytics" WHERE blob1 = 'signal'

  GROUP BY blob2, blob4, blob5 ORDER BY signal_count DESC LIMIT 100""",
]
