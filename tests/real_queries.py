"""Analytics Engine SQL as people write it: queries taken from public projects (dashboards,
Workers that call the SQL API, Cloudflare's own guides), each naming its source
(repository and path). Only the dataset name, the column numbers and the time bounds are
changed, so that they run on the conformance data (tests/aesql_fixtures.py: blob1 the
worker, blob2 the endpoint, blob3 '1' or '0' for success, double1 the latency, double2 the
receipt time, index1 the request id); where a query filters on a value of its own data, the
value is one of the fixture's, said in a comment.

Each query is answered equal to ClickHouse (chdb), or refused naming the construct, for
the reason given: what Cloudflare refuses in production must not work offline."""

from __future__ import annotations

from typing import NamedTuple

T = "hoox_telemetry"


class RealQuery(NamedTuple):
    source: str                 # repository and path the query comes from
    sql: str
    refused: str | None = None  # a fragment of the refusal's message; None: answered
    reason: str | None = None   # why it is refused
    ties: bool = False          # its ORDER BY leaves ties: compared as a set of rows
    # the column names Analytics Engine answers with, where stock ClickHouse spells them
    # otherwise; the values are still ClickHouse's
    names: tuple[str, ...] | None = None


AUTH0 = "abbaspour/auth0-metrics-cloudflare-analytics-engine"
TUIST = "tuist/tuist cas-worker/QUERIES.md"
DOCS = "cloudflare/cloudflare-docs content/analytics/analytics-engine"
COUNTERSCALE = "benvinegar/counterscale packages/server/app/analytics/query.ts"
WDL = "helloimalastair/where-durableobjects-live"
FILBEAM = "filbeam/worker docs/worker-analytics.md"

REAL_QUERIES: list[RealQuery] = [
    # -- abbaspour/auth0-metrics-cloudflare-analytics-engine: sql/*.sql ------------------------
    # index1 (the tenant) is blob1 here, its path blob2, its latency double1
    RealQuery(f"{AUTH0} sql/avg-latency-per-endpoint.sql", f"""select blob2 AS path,
       SUM(_sample_interval * double1) / SUM(_sample_interval) as avg_latency
from {T}
where blob1 = 'trade-worker'
    AND timestamp > NOW() - INTERVAL '1' DAY
group by path
"""),  # value: a fixture worker
    RealQuery(f"{AUTH0} sql/ratelimit-per-endpoint-last-1h.sql",
              f"""SELECT toStartOfInterval(timestamp, INTERVAL '1' SECOND ) AS ts,
       blob1 as tenant,
       blob2 AS path,
       max(double1) as limit,
       min(double2) as remaining
FROM {T}
WHERE timestamp > NOW() - INTERVAL '3' HOUR
Group by tenant, path, ts
order by ts
""", ties=True),
    RealQuery(f"{AUTH0} sql/rpm-per-tenant-last-1d.sql",
              f"""SELECT toStartOfInterval(timestamp, INTERVAL '1' MINUTE) AS minute,
       blob1 as tenant,
       sum(_sample_interval) as rpm
FROM {T}
WHERE timestamp > NOW() - INTERVAL '1' DAY
Group by tenant, minute
order by minute
""", ties=True),
    RealQuery(f"{AUTH0} sql/rps-per-endpoint-last-1h.sql",
              f"""SELECT toStartOfInterval(timestamp, INTERVAL '1' SECOND ) AS ts,
       blob1 as tenant,
       blob2 AS path,
       sum(_sample_interval) as rps
FROM {T}
WHERE timestamp > NOW() - INTERVAL '3' HOUR
Group by tenant, path, ts
order by ts
""", ties=True),
    RealQuery(f"{AUTH0} sql/rps-per-tenant-last-1h.sql",
              f"""SELECT toStartOfInterval(timestamp, INTERVAL '1' SECOND ) AS ts,
       blob1 as tenant,
       sum(_sample_interval) as rps
FROM {T}
WHERE timestamp > NOW() - INTERVAL '3' HOUR
Group by tenant, ts
order by ts
""", ties=True),
    RealQuery(f"{AUTH0} sql/rps-per-tenant-last-1m.sql",
              f"""SELECT toStartOfInterval(timestamp, INTERVAL '1' SECOND ) AS ts,
       blob1 as tenant,
       sum(_sample_interval) as rps
FROM {T}
WHERE timestamp > NOW() - INTERVAL '30' MINUTE
Group by tenant, ts
order by ts
""", ties=True),
    # a WHERE on an alias of the SELECT list, as ClickHouse allows
    RealQuery(f"{AUTH0} sql/raw.sql", f"""SELECT blob2 AS path,
       double1 as limit,
       double2 as remaining,
       double1 as latency,
       blob1 as tenant,
       _sample_interval
FROM {T}
    WHERE tenant = 'hoox'
         LIMIT 10"""),  # value: a fixture worker; no ORDER BY: the log's order
    RealQuery(f"{AUTH0} sql/avg_humidity.sql", f"""SELECT
    blob1 AS city,
    SUM(_sample_interval * double1) / SUM(_sample_interval) AS avg_humidity
FROM {T}
WHERE double1 > 0
GROUP BY city
ORDER BY avg_humidity DESC
    LIMIT 10"""),

    # -- tuist/tuist: cas-worker/QUERIES.md (blob1 route, blob2 method; its double5..13
    # are the fixture's zero doubles, which exercise the divisions by zero) -------------------
    RealQuery(TUIST, f"""SELECT
  blob1 AS route,
  blob2 AS method,
  IF(
    SUM(_sample_interval) = 0,
    0.0,
    SUM(double1 * _sample_interval) / SUM(_sample_interval)
  ) AS avg_total_latency_ms,
  quantileWeighted(0.50, double1, _sample_interval) AS p50_total_latency_ms,
  quantileWeighted(0.90, double1, _sample_interval) AS p90_total_latency_ms,
  quantileWeighted(0.99, double1, _sample_interval) AS p99_total_latency_ms,
  quantileWeighted(0.90, double2, _sample_interval) AS p90_origin_latency_ms,
  quantileWeighted(0.90, double3, _sample_interval) AS p90_compute_latency_ms,
  SUM(_sample_interval) AS est_request_count
FROM {T}
WHERE timestamp >= NOW() - INTERVAL '7' DAY
GROUP BY route, method
ORDER BY p99_total_latency_ms DESC;
""", ties=True),
    RealQuery(TUIST, f"""SELECT
  blob1 AS route,
  blob2 AS method,
  IF(
    SUM(double10 * _sample_interval) = 0,
    0.0,
    SUM(double5 * _sample_interval) / SUM(double10 * _sample_interval)
  ) AS avg_kv_read_latency_per_call_ms,
  quantileWeighted(
    0.90,
    IF(double10 > 0, double5 / double10, 0.0),
    IF(double10 > 0, _sample_interval, 0)
  ) AS p90_kv_read_latency_per_request_ms,
  SUM(double10 * _sample_interval) AS est_kv_read_call_count,
  IF(
    SUM(double13 * _sample_interval) = 0,
    0.0,
    SUM(
      IF(
        double8 < 0,
        0.0,
        double8
      ) * _sample_interval
    ) / SUM(double13 * _sample_interval)
  ) AS avg_server_fetch_latency_per_call_ms,
  quantileWeighted(
    0.90,
    IF(
      double13 > 0,
      IF(double8 < 0, 0.0, double8) / double13,
      0.0
    ),
    IF(double13 > 0, _sample_interval, 0)
  ) AS p90_server_fetch_latency_per_request_ms
FROM {T}
WHERE timestamp >= NOW() - INTERVAL '7' DAY
GROUP BY route, method
ORDER BY p90_kv_read_latency_per_request_ms DESC, route, method;
"""),  # route, method: added to the ORDER BY, whose one key is 0 on every row here
    RealQuery(TUIST, f"""SELECT
  blob1 AS route,
  blob2 AS method,
  SUM(double9 * _sample_interval) AS kv_hit_call_count,
  IF(
    SUM(double10 * _sample_interval) - SUM(double9 * _sample_interval) < 0,
    0.0,
    SUM(double10 * _sample_interval) - SUM(double9 * _sample_interval)
  ) AS kv_miss_call_count,
  SUM(double10 * _sample_interval) AS total_kv_read_call_count,
  IF(
    SUM(double10 * _sample_interval) = 0,
    0.0,
    SUM(double9 * _sample_interval) / SUM(double10 * _sample_interval)
  ) AS kv_hit_rate
FROM {T}
WHERE timestamp >= NOW() - INTERVAL '7' DAY
GROUP BY route, method
ORDER BY kv_hit_rate ASC;
""", ties=True),
    # double13 > 0 on no row of the fixture: its double1 stands for it
    RealQuery(TUIST, f"""SELECT
  blob1 AS route,
  blob2 AS method,
  quantileWeighted(
    0.50,
    IF(double1 > 0, double8 / double1, 0.0),
    _sample_interval
  ) AS p50_server_fetch_latency_ms,
  quantileWeighted(
    0.90,
    IF(double1 > 0, double8 / double1, 0.0),
    _sample_interval
  ) AS p90_server_fetch_latency_ms,
  SUM(double1 * _sample_interval) AS est_server_fetch_call_count
FROM {T}
WHERE timestamp >= NOW() - INTERVAL '7' DAY
  AND double1 > 0
GROUP BY route, method
ORDER BY p90_server_fetch_latency_ms DESC;
""", ties=True),
    RealQuery(TUIST, f"""SELECT
  blob1 AS route,
  blob2 AS method,
  quantileWeighted(0.90, double1, _sample_interval) AS p90_total_latency_ms,
  quantileWeighted(0.90, double2, _sample_interval) AS p90_origin_latency_ms,
  quantileWeighted(0.90, double3, _sample_interval) AS p90_compute_latency_ms,
  quantileWeighted(0.90, double10, _sample_interval) AS p90_kv_reads_per_request,
  quantileWeighted(
    0.90,
    IF(double10 > 0, (double10 - double9) / double10, 0.0),
    _sample_interval
  ) AS p90_kv_miss_ratio
FROM {T}
WHERE timestamp >= NOW() - INTERVAL '7' DAY
GROUP BY route, method
ORDER BY p90_total_latency_ms DESC;
""", ties=True),
    RealQuery(TUIST, f"""SELECT
  blob1 AS route,
  blob2 AS method,
  quantileWeighted(0.90, double1, _sample_interval) AS p90_total_latency_ms,
  SUM(double2 * _sample_interval) / SUM(_sample_interval) AS avg_origin_latency_ms,
  SUM(double5 * _sample_interval) / SUM(_sample_interval) AS avg_kv_read_latency_ms,
  quantileWeighted(0.90, IF(double12 > 0, double7 / double12, 0.0), _sample_interval) AS p90_s3_fetch_latency_ms,
  SUM(double10 * _sample_interval) AS est_kv_read_call_count,
  SUM(double13 * _sample_interval) AS est_server_fetch_call_count
FROM {T}
WHERE timestamp >= NOW() - INTERVAL '7' DAY
GROUP BY route, method
ORDER BY p90_total_latency_ms DESC;
""", ties=True),

    # -- Cloudflare's guides (cloudflare/cloudflare-docs) -------------------------------------
    RealQuery(f"{DOCS}/recipes/usage-based-billing-for-your-saas-product.md", f"""SELECT
  index1 AS customer_id,
  sum(_sample_interval) AS count
FROM
  {T}
GROUP BY customer_id
"""),
    RealQuery(f"{DOCS}/recipes/usage-based-billing-for-your-saas-product.md", f"""SELECT
  index1 AS customer_id,
  blob1 AS request_endpoint,
  sum(_sample_interval) AS count
FROM
  {T}
GROUP BY customer_id, request_endpoint
"""),
    # a WHERE on the alias of index1; its value: the fixture's first request id
    RealQuery(f"{DOCS}/recipes/usage-based-billing-for-your-saas-product.md", f"""SELECT
  index1 AS customer_id,
  blob1 AS request_endpoint,
  sum(_sample_interval) AS usage_count
FROM
  {T}
WHERE
  customer_id >= 'req-0000'
  AND timestamp >= toDateTime('2026-11-16 00:00:00')
  AND timestamp < toDateTime('2026-11-20 00:00:00')
GROUP BY customer_id, request_endpoint
"""),
    RealQuery(f"{DOCS}/recipes/usage-based-billing-for-your-saas-product.md", f"""SELECT
  blob2 AS customer_id,
  toStartOfInterval(timestamp, INTERVAL '1' DAY) AS date,
  blob1 AS request_endpoint,
  sum(_sample_interval) AS request_count
FROM
  {T}
WHERE
  customer_id = '/webhook'
  AND timestamp >= toDateTime('2026-11-16 00:00:00')
  AND timestamp < toDateTime('2026-11-24 00:00:00')
GROUP BY customer_id, date, request_endpoint
"""),  # index1 is blob2 here (a request id is one row); value: a fixture endpoint
    RealQuery(f"{DOCS}/grafana.md", f"""SELECT
    intDiv(toUInt32(timestamp), 60) * 60 AS t,
    blob1 AS label,
    SUM(_sample_interval * double1) / SUM(_sample_interval) AS average_metric
FROM {T}
WHERE
    timestamp <= NOW()
    AND timestamp > NOW() - INTERVAL '1' DAY
GROUP BY t
ORDER BY t
""", refused="blob1", reason="blob1 is neither aggregated nor in the GROUP BY: ClickHouse "
     "refuses it (NOT_AN_AGGREGATE), and so does Analytics Engine"),
    RealQuery(f"{DOCS}/worker-querying.md", f"""
            SELECT
                blob1 AS city,
                max(double1) as max_temp,
                min(double1) as min_temp
            FROM {T}
            WHERE timestamp > NOW() - INTERVAL '1' DAY
            GROUP BY city
            ORDER BY city"""),
    RealQuery(f"{DOCS}/sql-api.md", "SELECT 'Hello Workers Analytics Engine'"),
    RealQuery(f"{DOCS}/sql-api.md", "SHOW TABLES"),
    RealQuery(f"{DOCS}/sql-api.md", f"SELECT * FROM {T} ORDER BY timestamp DESC LIMIT 1000"),
    RealQuery(f"{DOCS}/sql-api.md", f"SELECT * FROM {T} WHERE timestamp < "
              "toDateTime(\"2026-11-20 13:56:48\") ORDER BY timestamp DESC LIMIT 1000",
              refused="unknown column 2026-11-20 13:56:48",
              reason="a double-quoted name is an identifier in ClickHouse, not a string: "
              "ClickHouse refuses the column (UNKNOWN_IDENTIFIER)"),
    RealQuery(f"{DOCS}/sql-api.md", f"""SELECT
    timestamp,
    blob1 AS location_id,
    double1 AS inside_temp,
    double2 AS outside_temp
FROM {T}
WHERE timestamp > NOW() - INTERVAL '1' DAY"""),
    RealQuery(f"{DOCS}/sql-api.md", f"""SELECT
    blob1 AS location_id,
    SUM(_sample_interval) AS n_readings
FROM {T}
WHERE timestamp > NOW() - INTERVAL '7' DAY
GROUP BY blob1"""),  # index1 is blob1 here
    RealQuery(f"{DOCS}/sql-api.md", f"""SELECT
    blob1 AS location_id,
    SUM(_sample_interval * double1) / SUM(_sample_interval) AS average_temp
FROM {T}
WHERE timestamp > NOW() - INTERVAL '7' DAY
GROUP BY blob1"""),  # index1 is blob1 here
    # the first guide's names (label_1, metric_2, one analytics_engine table) are the
    # dataset's blob and double columns and its name now
    RealQuery(f"{DOCS}/get-started.md", f"""SELECT
  intDiv(toUInt32(timestamp), 300) * 300 as t,
  blob1 as city,
  avg(double1) as avg_humidity
FROM {T}
WHERE
  dataset = '{T}'
  AND timestamp >= now() - INTERVAL '1' DAY
  AND double1 > 0
GROUP BY t, city
ORDER BY t, avg_humidity desc
"""),
    RealQuery(f"{DOCS}/get-started.md", f"""SELECT blob1 as city, avg(double1) as avg_humidity
FROM {T}
WHERE
  dataset = '{T}'
  AND double1 > 0
ORDER BY avg_humidity DESC
LIMIT 10
""", refused="blob1", reason="blob1 is neither aggregated nor in a GROUP BY (there is "
     "none): ClickHouse refuses it (NOT_AN_AGGREGATE)"),

    # -- benvinegar/counterscale: the web analytics Cloudflare's recipes point to (blob8
    # the site id is blob1 here, double1 the new-visitor flag and double3 the bounce the
    # fixture's zero doubles) ------------------------------------------------------------------
    RealQuery(COUNTERSCALE, f"""
            SELECT SUM(_sample_interval) as count,

            /* interval start needs local timezone, e.g. 00:00 in America/New York means start of day in NYC */
            toStartOfInterval(timestamp, INTERVAL '1' DAY, 'America/New_York') as _bucket,
            double3 as isVisitor,
            double4 as isBounce,

            /* output as UTC */
            toDateTime(_bucket, 'Etc/UTC') as bucket
            FROM {T}
            WHERE timestamp >= toDateTime('2026-11-17 05:00:00')
                                AND timestamp < toDateTime('2026-11-24 05:00:00')
                AND blob1 = 'trade-worker'
                AND blob2 = '/webhook'
            GROUP BY _bucket, isVisitor, isBounce
            ORDER BY _bucket ASC"""),  # values: a fixture worker and endpoint
    RealQuery(COUNTERSCALE, f"""
            SELECT SUM(_sample_interval) as count,
                double3 as isVisitor,
                double4 as isBounce
            FROM {T}
            WHERE timestamp >= NOW() - INTERVAL '7' DAY AND timestamp < NOW()
                AND blob2 = '/api/trade'
            AND blob1 = 'hoox'
            GROUP BY isVisitor, isBounce
            ORDER BY isVisitor, isBounce ASC"""),  # values: a fixture endpoint and worker
    RealQuery(COUNTERSCALE, f"""
            SELECT blob2, SUM(_sample_interval) as count
            FROM {T}
            WHERE timestamp >= toDateTime('2026-11-24 05:00:00') AND timestamp < NOW()
                AND double3 = 0
                AND blob1 = 'trade-worker'
                AND blob3 = '1'
            GROUP BY blob2
            ORDER BY count DESC
            LIMIT 10"""),  # values: a fixture worker; double3 = 0 for the fixture's 0
    RealQuery(COUNTERSCALE, f"""
            SELECT
                toStartOfInterval(timestamp, INTERVAL '1' HOUR) as date,
                SUM(_sample_interval) as count,
                blob1 as siteId,
                double3 as isVisitor,
                double4 as isBounce,
                blob2 as path, blob3 as country
            FROM {T}
            WHERE timestamp >= toDateTime('2026-11-23 00:00:00') AND timestamp < toDateTime('2026-11-24 00:00:00')
            GROUP BY date,
                blob1,
                double3,
                double4,
                blob2, blob3
            ORDER BY count DESC
        """, ties=True),
    RealQuery(COUNTERSCALE, f"""
            SELECT blob2,
                double3 as isVisitor,
                SUM(_sample_interval) as count
            FROM {T}
            WHERE timestamp >= NOW() - INTERVAL '30' DAY AND timestamp < NOW()
                AND double3 = 0
                AND blob1 = 'hoox'
                AND blob2 IN ('/webhook', '/api/status', '/')
            GROUP BY blob2, double3
            ORDER BY count DESC
            LIMIT 10"""),  # values: a fixture worker and endpoints
    RealQuery(COUNTERSCALE, f"""
            SELECT SUM(_sample_interval) as count,
                blob1 as siteId
            FROM {T}
            WHERE timestamp >= NOW() - INTERVAL '90' DAY AND timestamp < NOW()
            GROUP BY siteId
            ORDER BY count DESC
            LIMIT 10
        """),
    RealQuery(COUNTERSCALE, f"""
            SELECT
                MIN(timestamp) as earliestEvent,
                blob3 as isBounce
            FROM {T}
            WHERE blob1 = 'd1-worker'
            GROUP by isBounce
        """),  # value: a fixture worker

    # -- helloimalastair/where-durableobjects-live: the Worker's hourly cron (index1 the
    # colo is blob2 here; blob3 the region) ----------------------------------------------------
    # The Worker reads the answer's column "count()": Analytics Engine names a call by its
    # function, in the function's own case, where ClickHouse 26 keeps the query's COUNT()
    RealQuery(f"{WDL} src/cron/hourly.ts",
              f"SELECT COUNT() FROM {T} WHERE timestamp > NOW() - INTERVAL '1' HOUR",
              names=("count()",)),
    RealQuery(f"{WDL} src/cron/colos.ts", "SELECT blob1 as worker, blob2 as durable, count() "
              f"as ammt, avg(double1) as latency FROM {T} GROUP BY blob1, blob2"),
    RealQuery(f"{WDL} src/cron/regions.ts", "SELECT blob1 as worker, blob2 as durable, blob3 "
              "as region, count() as ammt, avg(double1) as latency FROM "
              f"{T} WHERE NOT isEmpty(blob3) GROUP BY blob1, blob2, blob3"),

    # -- filbeam/worker: docs/worker-analytics.md (index1 the service is blob1 here) -----------
    RealQuery(FILBEAM, f"""SELECT
  blob1 AS service,
  AVG(double1) AS avg_wall_time_ms,
  AVG(double2) AS avg_cpu_time_ms
FROM {T}
WHERE timestamp > NOW() - INTERVAL '6' HOUR
GROUP BY blob1
ORDER BY avg_wall_time_ms DESC
"""),
    RealQuery(FILBEAM, f"""SELECT
  blob1 AS service,
  COUNT(*) AS total,
  SUM(IF(blob3 != '1', 1, 0)) AS errors,
  SUM(IF(blob3 != '1', 1, 0)) * 100.0 / COUNT(*) AS error_rate
FROM {T}
WHERE timestamp > NOW() - INTERVAL '6' HOUR
GROUP BY blob1
ORDER BY error_rate DESC
""", refused="count(*)", reason="Cloudflare refuses count(*) in production; count() is "
     "the form Analytics Engine takes"),
    RealQuery(FILBEAM, f"""SELECT
  blob1 AS service,
  double1 AS status_code,
  COUNT(*) AS count
FROM {T}
WHERE timestamp > NOW() - INTERVAL '6' HOUR
  AND double1 > 0
GROUP BY blob1, double1
ORDER BY blob1, count DESC
""", refused="count(*)", reason="Cloudflare refuses count(*) in production"),
    RealQuery(FILBEAM, f"""SELECT
  blob1 AS service,
  QUANTILE(double1, 0.95) AS p95_wall_time_ms
FROM {T}
WHERE timestamp > NOW() - INTERVAL '6' HOUR
GROUP BY blob1
ORDER BY p95_wall_time_ms DESC
""", refused="unknown function QUANTILE", reason="not a function of the Analytics Engine "
     "reference (and ClickHouse's quantile takes its level as a parameter, quantile(0.95)(x), "
     "and one argument); quantileWeighted(0.95, x, _sample_interval) is the documented form"),
    RealQuery(FILBEAM, f"""SELECT
  toStartOfMinute(timestamp) AS minute,
  MAX(double1) AS latest_block
FROM {T}
WHERE timestamp > NOW() - INTERVAL '6' HOUR
GROUP BY minute
ORDER BY minute DESC
"""),
    RealQuery(FILBEAM, f"""SELECT
  toStartOfHour(timestamp) AS hour,
  COUNT(*) AS checks,
  SUM(double1) AS errors,
  SUM(double1) / COUNT(*) AS error_rate
FROM {T}
WHERE timestamp > NOW() - INTERVAL '24' HOUR
GROUP BY hour
ORDER BY hour DESC
""", refused="count(*)", reason="Cloudflare refuses count(*) in production"),
    RealQuery(FILBEAM, f"""SELECT
  toStartOfMinute(timestamp) AS minute,
  MAX(double1) AS max_lag_ms,
  blob1 AS data_set_id
FROM {T}
WHERE timestamp > NOW() - INTERVAL '6' HOUR
GROUP BY minute, blob1
ORDER BY minute DESC
""", ties=True),
]
