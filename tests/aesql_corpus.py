"""The conformance corpus: Analytics Engine SQL that, together, uses every function,
operator and clause of SPEC §2. The profile's example query comes first, then the
dashboard's questions, then the rest of the dialect. Each runs on the local engine and on
ClickHouse (chdb) over the same events; the results must be equal row by row."""

from __future__ import annotations

from typing import Any, NamedTuple

T = "hoox_telemetry"


class Q(NamedTuple):
    sql: str
    params: tuple[Any, ...] = ()


CORPUS: list[Q] = [
    # 1. the profile's example
    Q(f"SELECT sum(double1) as total_latency, count() as total_calls FROM {T} "
      "WHERE blob1 = ? AND timestamp >= now() - INTERVAL '1' DAY", ("trade-worker",)),
    # 2-6. the dashboard
    Q(f"SELECT toStartOfMinute(timestamp) AS minute, countIf(blob3 = '0') / count() AS "
      f"error_rate, count() AS calls FROM {T} WHERE timestamp >= now() - INTERVAL '1' DAY "
      "GROUP BY minute ORDER BY minute"),
    Q(f"SELECT blob1 AS worker, toStartOfInterval(timestamp, INTERVAL '5' MINUTE) AS bucket, "
      "quantileWeighted(0.5, double1, _sample_interval) AS p50, "
      "quantileWeighted(0.95, double1, _sample_interval) AS p95, "
      "quantileExactWeighted(0.99)(double1, _sample_interval) AS p99 "
      f"FROM {T} WHERE timestamp >= now() - INTERVAL '2' DAY "
      "GROUP BY worker, bucket ORDER BY bucket, worker"),
    Q(f"SELECT toDayOfWeek(timestamp) AS weekday, toHour(timestamp) AS hour, "
      f"sum(_sample_interval) AS calls FROM {T} GROUP BY weekday, hour "
      "ORDER BY weekday, hour"),
    Q(f"SELECT blob2 AS endpoint, sum(_sample_interval) AS calls, avg(double1) AS avg_ms "
      f"FROM {T} WHERE timestamp > now() - INTERVAL '7' DAY GROUP BY endpoint "
      "ORDER BY calls DESC LIMIT 5"),
    Q(f"SELECT blob1 AS worker, sumIf(_sample_interval, blob3 = '1') / sum(_sample_interval) "
      f"AS success_ratio, countIf(blob3 = '0') AS failures FROM {T} GROUP BY worker "
      "ORDER BY success_ratio DESC"),
    Q(f"SELECT blob1 AS worker, avgIf(double1, blob3 = '0') AS failed_ms, "
      f"avgIf(double1, blob3 = '1') AS ok_ms FROM {T} GROUP BY worker ORDER BY worker"),
    Q(f"SELECT toStartOfHour(timestamp) AS hour, blob1 AS worker, count() AS calls, "
      f"quantileExactWeighted(0.5)(double1, _sample_interval) AS median FROM {T} "
      "WHERE timestamp BETWEEN now() - INTERVAL '6' HOUR AND now() "
      "GROUP BY hour, worker ORDER BY hour, worker"),
    # aggregates
    Q(f"SELECT count() AS n, count(DISTINCT blob2) AS endpoints, min(double1) AS lo, "
      f"max(double1) AS hi, sum(double1 * _sample_interval) AS weighted, avg(double1) AS mean "
      f"FROM {T}"),
    Q(f"SELECT argMax(blob2, double1) AS slowest, argMin(blob2, double1) AS fastest, "
      f"argMax(index1, timestamp) AS latest, first_value(index1) AS first, "
      f"last_value(index1) AS last FROM {T}"),
    Q(f"SELECT blob1, first_value(blob2) AS first_ep, last_value(double1) AS last_ms, "
      f"argMin(timestamp, double1) AS fastest_at FROM {T} GROUP BY blob1 ORDER BY blob1"),
    Q(f"SELECT topK(3)(blob2) AS top_endpoints, topK(blob1) AS workers, "
      f"topKWeighted(2)(blob1, _sample_interval) AS weighted FROM {T}"),
    Q(f"SELECT blob1, topK(2)(blob2) AS top FROM {T} GROUP BY blob1 ORDER BY blob1"),
    Q(f"SELECT sum(DISTINCT _sample_interval) AS s, avg(DISTINCT toUInt8(double1)) AS a, "
      f"count(DISTINCT toHour(timestamp)) AS hours FROM {T}"),
    Q(f"SELECT count() AS n, sum(double1) AS s, avg(double1) AS a, min(blob1) AS lo, "
      f"max(timestamp) AS latest, quantileWeighted(0.5, double1, _sample_interval) AS q, "
      f"countIf(blob3 = '1') AS ok FROM {T} WHERE 1 = 0"),
    # conditionals
    Q(f"SELECT if(double1 > 100, 'slow', 'fast') AS speed, count() AS n FROM {T} "
      "GROUP BY speed ORDER BY speed"),
    Q(f"SELECT blob1, sum(if(blob3 = '1', 1, 0)) AS ok, sum(if(blob3 = '0', double1, 0)) "
      f"AS failed_ms FROM {T} GROUP BY blob1 ORDER BY blob1"),
    # time
    Q("SELECT now() AS n, today() AS d, toDateTime('2026-11-20 10:00:00') AS t, "
      "toDateTime(1795500000) AS u, toUnixTimestamp(now()) AS ux, "
      "toUnixTimestamp('2026-11-20 10:00:00') AS us"),
    Q(f"SELECT formatDateTime(toStartOfDay(timestamp), '%Y-%m-%d %H:%i:%S') AS day, "
      f"count() AS n FROM {T} GROUP BY day ORDER BY day"),
    Q(f"SELECT formatDateTime(toStartOfHour(timestamp), '%a %b %e %j %M %W %u %w %p %I %y "
      f"%Q %F %T %D %R %V %G %g %C %c %d %h %H %i %k %l %m %r %s %S %Y %z %% %n|%t|') AS label, "
      f"count() AS n FROM {T} WHERE timestamp > now() - INTERVAL '3' DAY "
      "GROUP BY label ORDER BY label"),
    Q(f"SELECT toStartOfInterval(timestamp, INTERVAL '30' SECOND) AS b, count() AS n FROM {T} "
      "WHERE timestamp > now() - INTERVAL '2' HOUR GROUP BY b ORDER BY b"),
    Q(f"SELECT toStartOfInterval(timestamp, INTERVAL '15' MINUTE) AS m15, "
      f"toStartOfInterval(timestamp, INTERVAL 5 HOUR) AS h5, count() AS n FROM {T} "
      "GROUP BY m15, h5 ORDER BY m15"),
    Q(f"SELECT toStartOfInterval(timestamp, INTERVAL '1' DAY) AS d1, "
      f"toStartOfInterval(timestamp, INTERVAL '3' DAY) AS d3, "
      f"toStartOfInterval(timestamp, INTERVAL '1' WEEK) AS w1, "
      f"toStartOfInterval(timestamp, INTERVAL '2' WEEK) AS w2, count() AS n FROM {T} "
      "GROUP BY d1, d3, w1, w2 ORDER BY d1"),
    Q(f"SELECT toStartOfInterval(timestamp, INTERVAL '1' MONTH) AS m, "
      f"toStartOfInterval(timestamp, INTERVAL '1' QUARTER) AS q, "
      f"toStartOfInterval(timestamp, INTERVAL '1' YEAR) AS y, count() AS n FROM {T} "
      "GROUP BY m, q, y ORDER BY m"),
    Q(f"SELECT toStartOfYear(timestamp) AS y, toStartOfQuarter(timestamp) AS q, "
      f"toStartOfMonth(timestamp) AS m, toStartOfWeek(timestamp) AS w, count() AS n "
      f"FROM {T} GROUP BY y, q, m, w ORDER BY w"),
    Q(f"SELECT toStartOfDay(timestamp) AS d, min(toStartOfHour(timestamp)) AS h, "
      f"max(toStartOfFifteenMinutes(timestamp)) AS m15, min(toStartOfTenMinutes(timestamp)) "
      f"AS m10, max(toStartOfFiveMinutes(timestamp)) AS m5, min(toStartOfMinute(timestamp)) "
      f"AS m1 FROM {T} GROUP BY d ORDER BY d"),
    Q(f"SELECT toYear(timestamp) AS y, toMonth(timestamp) AS m, toDayOfMonth(timestamp) AS d, "
      f"toYYYYMM(timestamp) AS ym, count() AS n FROM {T} GROUP BY y, m, d, ym "
      "ORDER BY y, m, d"),
    Q(f"SELECT toMinute(timestamp) AS mi, sum(toSecond(timestamp)) AS secs, "
      f"max(toHour(timestamp)) AS h FROM {T} GROUP BY mi ORDER BY mi"),
    Q(f"SELECT extract(HOUR FROM timestamp) AS h, extract(DAY FROM timestamp) AS d, "
      f"extract(MINUTE FROM timestamp) AS mi, extract(MONTH FROM timestamp) AS mo, "
      f"extract(YEAR FROM timestamp) AS y, extract(SECOND FROM timestamp) AS s "
      f"FROM {T} ORDER BY timestamp, index1 LIMIT 20"),
    Q(f"SELECT toDayOfWeek(timestamp) AS dow, formatDateTime(timestamp, '%u') AS u, "
      f"count() AS n FROM {T} GROUP BY dow, u ORDER BY dow"),
    Q(f"SELECT count() AS n FROM {T} WHERE timestamp >= '2026-11-20 00:00:00' "
      "AND timestamp < toDateTime('2026-11-21 00:00:00')"),
    Q(f"SELECT count() AS n, min(timestamp) AS first FROM {T} "
      "WHERE timestamp BETWEEN '2026-11-18 06:00:00' AND '2026-11-19 18:00:00'"),
    Q(f"SELECT count() AS n FROM {T} WHERE timestamp > now() - INTERVAL '1' MONTH "
      "AND timestamp < now() - INTERVAL '1' WEEK AND timestamp <= now() - INTERVAL '90' MINUTE "
      "AND timestamp > now() - INTERVAL '1' YEAR AND timestamp != now() - INTERVAL '30' SECOND"),
    Q(f"SELECT toStartOfDay(timestamp) + INTERVAL '12' HOUR AS noon, "
      f"toStartOfMonth(timestamp) + INTERVAL '1' MONTH AS next_month, "
      f"toStartOfWeek(timestamp) - INTERVAL '1' DAY AS sunday, count() AS n FROM {T} "
      "WHERE timestamp >= today() - INTERVAL '3' DAY GROUP BY noon, next_month, sunday "
      "ORDER BY noon"),
    Q(f"SELECT intDiv(toUnixTimestamp(timestamp), 3600) AS hour_no, count() AS n FROM {T} "
      "GROUP BY hour_no ORDER BY n DESC, hour_no LIMIT 10"),
    Q(f"SELECT toDateTime(double2) AS received, timestamp FROM {T} "
      "ORDER BY timestamp DESC, index1 LIMIT 5"),
    # numbers
    Q(f"SELECT sum(log(double1 + 1)) AS l, sum(ln(double1 + 1)) AS n, "
      f"sum(pow(double1, 0.5)) AS p, sum(round(double1, 1)) AS r1, sum(round(double1)) AS r0, "
      f"sum(floor(double1)) AS f, sum(ceil(double1)) AS c FROM {T}"),
    Q(f"SELECT round(avg(double1), 2) AS avg2, round(max(double1) / 7, 3) AS r3, "
      f"intDiv(count(), 7) AS weeks, count() % 7 AS rest, -min(double1) AS neg, "
      f"max(double1) - min(double1) AS spread, sum(double1) / 0 AS inf FROM {T}"),
    Q("SELECT 1 + 1 AS two, 7 % 3 AS seven_mod, 7 / 2 AS half, intDiv(7, 2) AS idiv, "
      "intDiv(-7, 2) AS nidiv, 2 * 3 - 10 AS neg, -7 % 3 AS nmod, 7.5 % 2 AS fmod, "
      "1.5 + 1 AS f, 'it''s' AS s, pow(2, 10) AS p"),
    Q(f"SELECT sum(toUInt8(double1)) AS u8, sum(toUInt32(double1 * 1000)) AS u32, "
      f"max(toUInt8(blob3)) AS flag, sum(toUInt8(timestamp)) AS t8 FROM {T}"),
    Q(f"SELECT sum(bitAnd(toUInt32(double1), 255)) AS a, sum(bitOr(toUInt8(double1), 1)) AS o, "
      f"sum(bitXor(toUInt32(double1), 5)) AS x, sum(bitNot(toUInt8(double1))) AS nt, "
      f"sum(bitShiftLeft(toUInt8(double1), 1)) AS sl, sum(bitShiftRight(toUInt32(double1), 2)) "
      f"AS sr, sum(bitCount(toUInt32(double1))) AS bc, sum(bitTest(toUInt32(double1), 3)) AS bt, "
      f"sum(bitRotateLeft(toUInt8(double1), 3)) AS rl, "
      f"sum(bitRotateRight(toUInt8(double1), 3)) AS rr, "
      f"sum(bitHammingDistance(toUInt32(double1), 7)) AS hd FROM {T}"),
    Q(f"SELECT toUInt8(double1) AS v, bin(toUInt8(double1)) AS b, hex(toUInt32(double1 * 1000)) "
      f"AS h, hex(blob1) AS hb, hex(double1) AS hf FROM {T} ORDER BY timestamp, index1 LIMIT 25"),
    # strings
    Q(f"SELECT blob1, blob2, length(blob2) AS len, max(empty(blob4)) AS e4, empty(blob2) AS e2, "
      f"lower(blob1) AS lo, upper(blob1) AS up, lowerUTF8(blob2) AS lo8, upperUTF8(blob1) AS up8, "
      f"count() AS n FROM {T} GROUP BY blob1, blob2 ORDER BY blob1, blob2"),
    Q(f"SELECT blob2, startsWith(blob2, '/api') AS api, endsWith(blob2, 'k') AS k, "
      f"position(blob2, 'a') AS pos_a, substring(blob2, 2, 3) AS sub, substring(blob2, 3) AS tail, "
      f"substring(blob2, -4, 2) AS back FROM {T} GROUP BY blob2 ORDER BY blob2"),
    Q(f"SELECT format('{{}} took {{}} ms at {{}}', blob1, max(double1), max(timestamp)) AS line, "
      f"format('{{0}}-{{0}} {{1}}', blob1, count()) AS twice FROM {T} GROUP BY blob1 "
      "ORDER BY blob1"),
    Q(f"SELECT count() AS n FROM {T} WHERE blob2 LIKE '/api/%' AND blob1 NOT LIKE '%worker' "
      "AND blob2 NOT LIKE '%Status'"),
    Q(f"SELECT blob1, count() AS n FROM {T} WHERE blob1 ILIKE '%WORKER%' OR blob2 ILIKE "
      "'/API/Ä%' GROUP BY blob1 ORDER BY blob1"),
    Q(f"SELECT blob1 FROM {T} WHERE blob1 LIKE 'Email_Worker' AND blob1 LIKE '%-%' "
      "AND blob2 = '/health' ORDER BY timestamp LIMIT 3"),
    # operators and predicates
    Q(f"SELECT count() AS n FROM {T} WHERE blob1 IN ('hoox', 'd1-worker') AND "
      "blob2 NOT IN ('/health', '/') AND double1 >= 10 AND double1 <= 200 AND double1 < 150 "
      "AND double1 > 12.5 AND blob3 <> '0' AND NOT blob1 = 'x'"),
    Q(f"SELECT blob1, count() AS n FROM {T} WHERE (double1 BETWEEN 20 AND 40 OR blob3 = '0') "
      "AND NOT (blob2 = '/webhook' AND blob1 = 'hoox') GROUP BY blob1 ORDER BY blob1"),
    Q(f"SELECT double1 * 2 + 1 AS a, (double1 - 1) / 4 AS b, double1 % 7 AS c, "
      f"-double1 AS d, double1 * _sample_interval AS e FROM {T} "
      "ORDER BY timestamp, index1 LIMIT 10"),
    Q(f"SELECT dataset, count() AS n FROM {T} WHERE dataset = 'hoox_telemetry' "
      "GROUP BY dataset"),
    # clauses
    Q(f"SELECT worker, calls FROM (SELECT blob1 AS worker, count() AS calls FROM {T} "
      "GROUP BY worker) WHERE calls > 100 ORDER BY calls DESC"),
    Q(f"SELECT max(p95) AS worst FROM (SELECT blob1, "
      f"quantileWeighted(0.95, double1, _sample_interval) AS p95 FROM {T} GROUP BY blob1)"),
    Q(f"SELECT blob2, count() AS n FROM {T} GROUP BY blob2 HAVING count() > 200 "
      "ORDER BY n DESC"),
    Q(f"SELECT blob2, count() AS n FROM {T} GROUP BY blob2 HAVING n > 100 AND avg(double1) > 1 "
      "ORDER BY blob2 LIMIT ALL"),
    Q(f"SELECT index1, double1 FROM {T} ORDER BY double1 DESC, index1 LIMIT 5 OFFSET 10"),
    Q(f"SELECT blob1, count() FROM {T} GROUP BY 1 ORDER BY 2 DESC FORMAT JSON"),
    Q(f"SELECT count(), sum(double1), blob1 FROM {T} GROUP BY blob1 ORDER BY blob1 "
      "FORMAT JSONEachRow"),
    Q(f"SELECT * FROM {T} ORDER BY timestamp, index1 LIMIT 3"),
    Q(f"SELECT count() AS n, n * 2 AS twice, twice + 1 AS more FROM {T}"),
    # params, bound as literals
    Q(f"SELECT blob1, count() AS n FROM {T} WHERE double1 > ? AND blob2 IN (?, ?) "
      "GROUP BY blob1 HAVING n > ? ORDER BY blob1 LIMIT ?",
      (20.5, "/webhook", "/api/trade", 10, 3)),
    Q(f"SELECT count() AS n FROM {T} WHERE blob1 = ?", ("x' OR 1=1 --",)),
    Q(f"SELECT ? AS s, ? AS i, ? AS f, count() AS n FROM {T} WHERE blob1 != ?",
      ("it's \\ \"quoted\"", -3, 0.25, "hoox")),
]
