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

# The examples of Cloudflare's "Analytics Engine SQL reference" (statements, clauses,
# functions, operators, literals), on this dataset's columns, and what the issue found
# refused or answered differently: capitals, time zones, precision, aliases, code points.
REFERENCE: list[Q] = [
    Q(f"SELECT blob2, double3 FROM {T} ORDER BY blob2 LIMIT 5"),
    Q(f"SELECT blob2 AS probe_name, double1 AS temperature FROM {T} ORDER BY index1 LIMIT 5"),
    Q(f"SELECT blob2 AS probe_name, double1 AS temp_c, double1*1.8+32 AS temp_f FROM {T} "
      "ORDER BY index1 LIMIT 5"),
    Q(f"SELECT blob2 AS probe_name, IF(double1 <= 20, 'FREEZING', 'NOT FREEZING') AS "
      f"description FROM {T} ORDER BY index1 LIMIT 5"),
    Q(f"SELECT blob2 AS probe_name, if(double1 <= 20, 'FREEZING', 'NOT FREEZING') AS "
      f"description FROM {T} ORDER BY index1 LIMIT 5"),
    Q(f"SELECT blob2 AS probe_name, AVG(double1) AS avg_temp FROM {T} GROUP BY probe_name "
      "ORDER BY probe_name"),
    Q(f"SELECT * FROM ( SELECT blob1 AS probe_name, count() as num_readings FROM {T} "
      "GROUP BY probe_name) ORDER BY probe_name"),
    Q(f"SELECT blob1 AS probe_name, avg(double1) AS average_temp FROM {T} "
      "WHERE double1 > 10 AND blob2 = '/webhook' GROUP BY probe_name ORDER BY probe_name"),
    Q(f"SELECT blob1 AS probe_name, count() AS n FROM {T} GROUP BY probe_name "
      "ORDER BY n DESC, probe_name ASC LIMIT 3"),
    Q("SELECT length('a string') AS s"),
    Q(f"SELECT length(blob1) AS s FROM {T} GROUP BY s ORDER BY s"),
    Q("SELECT empty('a string') AS b, empty('') AS e, isEmpty('') AS ie"),
    Q("SELECT lower('STRING TO DOWNCASE') AS s, upper('string to uppercase') AS u"),
    Q("SELECT lowerUTF8('STRING TO DOWNCASE ÄÖ') AS s, upperUTF8('straße äö') AS u, "
      "toLower('ÄPFEL Birne') AS tl, toUpper('äpfel birne') AS tu"),
    Q(f"SELECT blob1, toLower(blob1) AS tl, toUpper(blob2) AS tu, LOWER(blob1) AS lo, "
      f"UPPER(blob1) AS up FROM {T} GROUP BY blob1, blob2 ORDER BY blob1, blob2"),
    Q("SELECT startsWith('prefix ...', 'prefix') AS a, endsWith('... suffix', 'suffix') AS b, "
      "position('hello', 'll') AS p"),
    Q("SELECT substring('hoox', 1, -1) AS a, substring('hoox', 2) AS b, "
      "substring('hoox', -2, 1) AS c, substring('hoox', 2, -2) AS d, "
      "substring('Äpfel', 1, 2) AS e, SUBSTRING('Äpfel', -3) AS f, substr('Äpfel', 2, -1) AS g"),
    Q(f"SELECT blob2, length(blob2) AS len, substring(blob2, 2, -1) AS inner_part, "
      f"substring(blob2, -3) AS tail FROM {T} GROUP BY blob2 ORDER BY blob2"),
    Q("SELECT format('{} {}', 'hello', 'world') AS s, format('{1} {0}', 'a', 'b') AS t"),
    Q("SELECT formatDateTime(now(), '%Y-%m-%d') AS a, "
      "formatDateTime(toDateTime('2022-12-01 16:17:00', 'America/New_York'), '%Y-%m-%d') AS b, "
      "formatDateTime(toDateTime('2022-12-01 16:17:00', 'America/New_York'), '%Y-%m-%d %H:%i', "
      "'Etc/UTC') AS c"),
    Q("SELECT toDateTime(355924804) AS a, toDateTime('1981-04-12 12:00:04') AS b, "
      "toDateTime('2022-12-01 16:17:00', 'America/New_York') AS c, "
      "toUnixTimestamp(toDateTime('2022-12-01 16:17:00', 'America/New_York')) AS d"),
    Q(f"SELECT toDateTime(double2) AS t, toDateTime(formatDateTime(timestamp, "
      f"'%Y-%m-%d %H:%i:%S')) AS back FROM {T} ORDER BY index1 LIMIT 3"),
    Q("SELECT NOW() AS n, TODAY() AS d, now() - INTERVAL '1' DAY AS y"),
    Q(f"SELECT COUNT() AS n, SUM(double1) AS s, AVG(double1) AS a, MIN(double1) AS lo, "
      f"MAX(double1) AS hi, Count() AS c2 FROM {T}"),
    Q(f"SELECT toStartOfInterval(timestamp, INTERVAL '1' HOUR, 'Asia/Kolkata') AS h, "
      f"count() AS n FROM {T} WHERE timestamp > now() - INTERVAL '1' DAY GROUP BY h ORDER BY h"),
    Q(f"SELECT toStartOfDay(timestamp, 'America/New_York') AS d, toHour(timestamp, "
      f"'America/New_York') AS h, count() AS n FROM {T} GROUP BY d, h ORDER BY d, h"),
    Q(f"SELECT toDateTime(timestamp, 'Europe/Berlin') AS berlin, toYear(toDateTime(timestamp, "
      f"'Pacific/Auckland')) AS y, toDayOfMonth(timestamp, 'Pacific/Auckland') AS dm, "
      f"toMonth(timestamp, 'Pacific/Kiritimati') AS m, toMinute(timestamp, 'Asia/Kathmandu') "
      f"AS mi FROM {T} ORDER BY index1 LIMIT 20"),
    Q(f"SELECT toStartOfMonth(timestamp, 'Pacific/Kiritimati') AS m, toStartOfWeek(timestamp, "
      f"1, 'Australia/Sydney') AS w, toYYYYMM(timestamp, 'Pacific/Kiritimati') AS ym, "
      f"count() AS n FROM {T} GROUP BY m, w, ym ORDER BY m, w, ym"),
    Q(f"SELECT toStartOfFifteenMinutes(toDateTime(timestamp, 'Asia/Kathmandu')) AS q, "
      f"formatDateTime(toDateTime(timestamp, 'Asia/Tokyo'), '%H:%i') AS hm, count() AS n "
      f"FROM {T} WHERE timestamp > now() - INTERVAL '3' HOUR GROUP BY q, hm ORDER BY q, hm"),
    Q(f"SELECT toUnixTimestamp('2026-11-20 10:00:00', 'Asia/Tokyo') AS u, "
      f"count() AS n FROM {T} WHERE timestamp >= toDateTime('2026-11-20 10:00:00', "
      "'America/Los_Angeles')"),
    Q("SELECT floor(1.2345, 2) AS a, ceil(1.2345, 2) AS b, floor(-1.2345, 1) AS c, "
      "ceil(-1.2345, 1) AS d, floor(1234.5, -2) AS e, ceil(1234.5, -2) AS f, "
      "floor(1234, -2) AS g, ceil(1234, -1) AS h, FLOOR(2.5) AS i, CEIL(2.5, 0) AS j"),
    Q(f"SELECT floor(double1, 1) AS f1, ceil(double1, 2) AS c2, floor(double1, -1) AS fm, "
      f"round(double1, 2) AS r2, ROUND(double1) AS r0 FROM {T} ORDER BY index1 LIMIT 25"),
    Q("SELECT POW(2, 10) AS p, power(2, 3) AS q, LOG(100) AS l, LN(1) AS n, intDiv(7, 2) AS d"),
    Q(f"SELECT IF(blob3 = '1', 'ok', IF(double1 > 100, 'slow failure', 'failure')) AS kind, "
      f"count() AS n FROM {T} GROUP BY kind ORDER BY kind"),
    Q(f"SELECT if(blob3 = '1', if(double1 > 50, 2, 1), if(double1 > 50, -2, -1)) AS k, "
      f"SUM(if(blob3 = '0', 1, 0)) AS failures, count() AS n FROM {T} GROUP BY k ORDER BY k"),
    Q(f"SELECT HEX(255) AS h, BIN(5) AS b, FIRST_VALUE(blob1) AS f, LAST_VALUE(blob1) AS l "
      f"FROM {T}"),
    Q("SELECT 1 + 2 AS a, 5 - 3 AS b, 2 * 3 AS c, 7 / 2 AS d, 7 % 3 AS e, 1 = 1 AS f, "
      "1 != 2 AS g, 1 <> 1 AS h, 2 > 1 AS i, 2 >= 2 AS j, 1 < 2 AS k, 2 <= 1 AS l"),
    Q(f"SELECT count() AS n FROM {T} WHERE blob1 IN ('hoox', 'd1-worker') AND blob2 NOT IN "
      "('/health') AND double1 BETWEEN 10 AND 50 AND blob2 LIKE '/api/%' AND "
      "blob1 NOT LIKE '%x%' AND blob1 ILIKE '%WORKER%' OR NOT blob3 = '1'"),
    Q(f"SELECT blob1, count() AS n FROM {T}\nWHERE blob3 = '1'\n\n  AND double1 > 5\n\n"
      "GROUP BY blob1\nORDER BY blob1\n"),
    Q(f"SELECT count() AS n FROM \"{T}\" WHERE {T}.blob1 = 'hoox'"),
    Q(f"SELECT count() AS n, min(toDateTime(timestamp, 'America/New_York')) AS first FROM {T} "
      "WHERE toDateTime(timestamp, 'America/New_York') >= '2026-11-20 10:00:00' AND "
      "toDateTime(timestamp, 'Asia/Tokyo') BETWEEN '2026-11-18' AND '2026-11-23 08:00:00'"),
]
CORPUS += REFERENCE

# The platform's dashboard (SPEC §9), verbatim as it sends them, run against a `hoox`
# layout log named `hoox-analytics` (aesql_fixtures.make_hoox_records: the five event
# types, a good share of them inside these queries' August week).
D = '"hoox-analytics"'
DASHBOARD: list[Q] = [
    Q("""SELECT blob4 as endpoint, blob2 as worker, count() as call_count, AVG(double1) as avg_latency_ms,
       SUM(if(blob3 = 'success', 1, 0)) as success_count
FROM "hoox-analytics" WHERE blob1 = 'api-call' AND blob2 = 'trade-worker'
  AND timestamp >= toDateTime('2026-08-12 10:00:00')
GROUP BY blob4, blob2 ORDER BY call_count DESC LIMIT 50"""),
    Q("""SELECT blob2 as source, blob4 as signal_type, blob5 as symbol, count() as signal_count,
       AVG(double1) as avg_confidence
FROM "hoox-analytics" WHERE blob1 = 'signal' AND timestamp >= toDateTime('2026-08-12 10:00:00')
GROUP BY blob2, blob4, blob5 ORDER BY signal_count DESC LIMIT 100"""),
    Q("""SELECT blob4 as exchange, count() as trade_count,
       SUM(_sample_interval * double2) / SUM(_sample_interval) as avg_price,
       SUM(if(blob3 = 'success', 1, 0)) as success_count, SUM(if(blob3 = 'failure', 1, 0)) as failure_count
FROM "hoox-analytics" WHERE blob1 = 'trade'
  AND timestamp >= toDateTime('2026-08-12 10:00:00') AND timestamp <= toDateTime('2026-08-19 10:00:00')
GROUP BY blob4 ORDER BY trade_count DESC"""),
    Q("""SELECT count() as total, SUM(if(blob3 = 'success', 1, 0)) as successes,
       SUM(if(blob3 = 'failure', 1, 0)) as failures,
       if(count() = 0, 0, SUM(if(blob3 = 'success', 1, 0)) * 100.0 / count()) as success_rate
FROM "hoox-analytics" WHERE blob1 = 'trade'"""),
    Q("""SELECT blob2 as worker, blob1 as data_type, SUM(double1) as total_requests,
       SUM(double2) as total_errors, AVG(double3) as avg_duration_ms
FROM "hoox-analytics" WHERE blob1 = 'worker-perf' GROUP BY blob2, blob1 ORDER BY total_requests DESC"""),
    # a filter off: blank lines in the WHERE clause, as the dashboard leaves them
    Q("""SELECT blob4 as endpoint, blob2 as worker, count() as call_count, AVG(double1) as avg_latency_ms,
       SUM(if(blob3 = 'success', 1, 0)) as success_count
FROM "hoox-analytics" WHERE blob1 = 'api-call'

  AND timestamp >= toDateTime('2026-08-12 10:00:00')

GROUP BY blob4, blob2 ORDER BY call_count DESC LIMIT 50"""),
    # the trade query with bounds around a later week (the data's last days)
    Q("""SELECT blob4 as exchange, count() as trade_count,
       SUM(_sample_interval * double2) / SUM(_sample_interval) as avg_price,
       SUM(if(blob3 = 'success', 1, 0)) as success_count, SUM(if(blob3 = 'failure', 1, 0)) as failure_count
FROM "hoox-analytics" WHERE blob1 = 'trade'
  AND timestamp >= toDateTime('2026-11-17 10:00:00') AND timestamp <= toDateTime('2026-11-24 10:00:00')
GROUP BY blob4 ORDER BY trade_count DESC"""),
    Q(f"SELECT blob1, blob2, count() AS n FROM {D} GROUP BY blob1, blob2 ORDER BY n DESC, "
      "blob1, blob2"),
]


class Construct(NamedTuple):
    """A ClickHouse construct that sqlglot parses: translated (`refused` None, and then
    equal to ClickHouse's answer) or refused with a message that names it."""
    sql: str
    refused: str | None = None


# The walk over ClickHouse's clauses and constructs beyond the documented dialect.
CONSTRUCTS: list[Construct] = [
    # translated: each equal to ClickHouse
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY blob1 ORDER BY n, blob1 "
              "LIMIT 1, 2"),
    Construct(f"SELECT blob2, avgIf(double1, double1 > 150) AS a FROM {T} GROUP BY blob2 "
              "ORDER BY a NULLS FIRST, blob2"),
    Construct(f"SELECT blob2, avgIf(double1, double1 > 150) AS a FROM {T} GROUP BY blob2 "
              "ORDER BY a DESC NULLS LAST, blob2"),
    Construct(f"SELECT blob2, avgIf(double1, double1 > 150) / 0 AS a FROM {T} GROUP BY blob2 "
              "ORDER BY a DESC, blob2"),
    Construct(f"SELECT t.blob1 AS w, count() AS n FROM {T} AS t WHERE t.blob2 NOT LIKE '/api%' "
              "GROUP BY w ORDER BY w"),
    Construct(f"SELECT toStartOfInterval(timestamp, INTERVAL 1 DAY) AS d, count() AS n "
              f"FROM {T} GROUP BY d ORDER BY d"),
    Construct(f"SELECT w, n FROM (SELECT blob1 AS w, count() AS n FROM {T} GROUP BY w) "
              "WHERE n > 100 ORDER BY n DESC LIMIT ALL"),
    # expressions over GROUP BY keys, and aggregates, in a query that aggregates
    Construct(f"SELECT upper(blob1) AS u, count() AS n FROM {T} GROUP BY blob1 ORDER BY u"),
    Construct(f"SELECT toStartOfHour(timestamp) AS h, toStartOfDay(h) AS d, count() AS n "
              f"FROM {T} GROUP BY h ORDER BY n DESC, h LIMIT 3"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY 1 ORDER BY 2 DESC"),
    # quantiles whose weights are all 0: the smallest value, as ClickHouse answers
    Construct(f"SELECT blob1, quantileWeighted(0.9, double1, if(double2 < 0, 1, 0)) AS q, "
              f"quantileExactWeighted(0.5)(double1, 0) AS e FROM {T} GROUP BY blob1 "
              "ORDER BY blob1"),
    # IS [NOT] NULL: false (true) on Analytics Engine's columns and whatever is computed
    # from them, SQLite's NULLs (NaN, avg of nothing) included; NULL where ClickHouse is
    Construct(f"SELECT count() AS n FROM {T} WHERE blob1 IS NOT NULL AND NOT index1 IS NULL"),
    Construct(f"SELECT count() AS n FROM {T} WHERE blob4 IS NULL OR double20 IS NULL"),
    Construct(f"SELECT blob1 AS w, double1 / 0 IS NULL AS a, (double1 - double1) / 0 IS NULL "
              f"AS b, timestamp IS NOT NULL AS c FROM {T} ORDER BY timestamp LIMIT 3"),
    Construct(f"SELECT avg(double1) IS NULL AS a, sum(double1) IS NOT NULL AS b, "
              f"min(blob1) IS NULL AS c, count() IS NULL AS d FROM {T} WHERE 1 = 0"),
    Construct("SELECT NULL IS NULL AS a, NULL IS NOT NULL AS b, (NULL = 1) IS NULL AS c, "
              "(1 + NULL) IS NULL AS d, if(1 = 1, NULL, 2) IS NULL AS e"),
    Construct(f"SELECT sum(NULL) AS s, avg(NULL) AS a, max(NULL) AS m, sum(NULL) IS NULL AS "
              f"sn, count(NULL) IS NULL AS cn FROM {T}"),
    Construct(f"SELECT x IS NULL AS y, count() AS n FROM (SELECT if(double1 > 100, NULL, 1) "
              f"AS x FROM {T}) GROUP BY y ORDER BY y"),
    Construct(f"SELECT y, count() AS n FROM (SELECT if(double1 > 100, NULL, blob1) AS x, "
              f"x IS NOT NULL AS y FROM {T}) GROUP BY y HAVING y IS NOT NULL ORDER BY y"),
    # refused, each by its name
    Construct(f"SELECT blob1, blob2 FROM {T} ORDER BY blob1, blob2 LIMIT 1 BY blob1",
              "LIMIT ... BY"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY blob1 WITH TOTALS",
              "WITH TOTALS"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY blob1 WITH ROLLUP",
              "WITH ROLLUP"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY blob1 WITH CUBE", "WITH CUBE"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY ROLLUP(blob1)", "ROLLUP"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY CUBE(blob1, blob2)", "CUBE"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY GROUPING SETS ((blob1), ())",
              "GROUPING SETS"),
    Construct(f"SELECT blob1, count() AS n FROM {T} GROUP BY ALL", "GROUP BY ALL"),
    Construct(f"SELECT count() AS n FROM {T} SETTINGS max_threads = 1", "SETTINGS"),
    Construct(f"SELECT count() AS n FROM {T} FINAL", "FINAL"),
    Construct(f"SELECT count() AS n FROM {T} SAMPLE 0.1", "SAMPLE"),
    Construct(f"SELECT count() AS n FROM {T} PREWHERE double1 > 10", "PREWHERE"),
    Construct(f"SELECT blob1, x FROM {T} ARRAY JOIN [1, 2] AS x", "ARRAY JOIN"),
    Construct(f"SELECT blob1, sum(double1) OVER (PARTITION BY blob1 ORDER BY timestamp "
              f"ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM {T}", "OVER"),
    Construct(f"SELECT blob1, count() OVER w AS n FROM {T} WINDOW w AS (PARTITION BY blob1)",
              "WINDOW"),
    Construct(f"SELECT blob1 FROM {T} QUALIFY double1 > 10", "QUALIFY"),
    Construct(f"SELECT blob1 FROM {T} ORDER BY blob1 LIMIT 3 WITH TIES", "WITH TIES"),
    Construct(f"SELECT toStartOfHour(timestamp) AS h FROM {T} ORDER BY h WITH FILL",
              "WITH FILL"),
    Construct(f"SELECT * EXCEPT (blob1) FROM {T}", "EXCEPT"),
    Construct(f"SELECT * REPLACE (1 AS blob1) FROM {T}", "REPLACE"),
    Construct(f"SELECT count() AS n FROM {T} WHERE blob1 GLOBAL IN ('hoox')", "GLOBAL IN"),
    Construct(f"SELECT count() AS n FROM {T} WHERE blob1 IN (SELECT blob1 FROM {T})",
              "IN (subquery)"),
    Construct(f"SELECT count() AS n FROM {T} WHERE blob2 LIKE '/a!%' ESCAPE '!'", "ESCAPE"),
    Construct(f"SELECT blob1 FROM {T} ORDER BY blob1 COLLATE 'de'", "COLLATE"),
    Construct(f"SELECT blob1 FROM {T} OFFSET 1 ROWS FETCH NEXT 2 ROWS ONLY", "FETCH"),
    Construct(f"SELECT DISTINCT ON (blob1) blob1, blob2 FROM {T}", "DISTINCT"),
    Construct(f"SELECT a FROM (SELECT blob1 AS a FROM {T}) AS t(a)", "table alias"),
    Construct(f"SELECT (blob1, blob2) AS pair FROM {T}", "tuples"),
    Construct(f"SELECT [1, 2] AS list FROM {T}", "array literals"),
    Construct(f"SELECT blob1 FROM {T} WHERE blob1 IS TRUE", "IS TRUE"),
    Construct(f"SELECT CASE WHEN double1 > 1 THEN 'a' ELSE 'b' END AS c FROM {T}", "CASE"),
    Construct(f"SELECT a.blob1 FROM {T} AS a JOIN {T} AS b ON a.index1 = b.index1", "JOIN"),
    Construct(f"SELECT blob1 FROM {T} UNION ALL SELECT blob2 FROM {T}", "UNION"),
    Construct(f"WITH 1 AS one SELECT one FROM {T}", "WITH"),
]
