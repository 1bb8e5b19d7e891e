"""Cloudflare's Analytics Engine SQL API (SPEC §2), as a client.

`POST {api_base}/accounts/{account}/analytics_engine/sql` with a Bearer token and the raw
SQL as the body. The API has no placeholders, so `?` parameters are bound on our side by
`storage.query.aesql.to_clickhouse`, which checks the query against the Analytics Engine dialect and
writes each parameter as a ClickHouse literal into the parsed tree — never by pasting
strings. Answers: JSON with 64-bit integers as strings (coerced here to numbers), 422
with `Input was invalid: …` for SQL Cloudflare refuses (passed on as a 422), and
anything else — a timeout, a refused connection, 5xx, 429 — as a failure with the HTTP
status /query should answer (502, 503, 504).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import httpx

from ..config import Config
from .aesql import QueryResult
from .aesql.clickhouse import translate


class CloudflareError(Exception):
    """Cloudflare did not answer the query; `status` is what /query answers with."""

    status = 502

    def __init__(self, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class CloudflareNotConfigured(CloudflareError):
    status = 503


class CloudflareUnreachable(CloudflareError):
    status = 503


class CloudflareTimeout(CloudflareError):
    status = 504


class CloudflareBadResponse(CloudflareError):
    """5xx, an unexpected status, or a body that is not the JSON the API documents."""
    status = 502


class CloudflareQueryRejected(CloudflareError):
    """Cloudflare answered 422: the SQL is invalid there. Not a failure of Cloudflare."""
    status = 422


# ClickHouse's JSON output quotes (U)Int64 and wider integers so JavaScript keeps them
# exact; /query promises JSON numbers from either source.
_WIDE_INT = re.compile(r"^U?Int(64|128|256)$")
_WRAPPER = re.compile(r"^(Nullable|LowCardinality)\((.*)\)$")
_ARRAY = re.compile(r"^Array\((.*)\)$")


def coerce(type_name: str, value: Any) -> Any:
    """A value of the API's JSON output as the JSON number it stands for."""
    type_name = type_name.strip()
    wrapped = _WRAPPER.match(type_name)
    if wrapped:
        return coerce(wrapped.group(2), value)
    array = _ARRAY.match(type_name)
    if array and isinstance(value, list):
        return [coerce(array.group(1), v) for v in value]
    if isinstance(value, str) and _WIDE_INT.match(type_name):
        try:
            return int(value)
        except ValueError:
            return value
    if isinstance(value, str) and type_name.startswith(("Float", "Decimal")):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class CloudflareSQL:
    """One account's SQL API, over one long-lived httpx client (connections are reused).
    Every call is bounded by `timeout_ms`: a hanging Cloudflare cannot hold a request."""

    def __init__(self, *, api_base: str, account_id: str, api_token: str, dataset: str,
                 timeout_ms: int, max_rows: int, http: httpx.Client):
        self.url = f"{api_base.rstrip('/')}/accounts/{account_id}/analytics_engine/sql"
        self._headers = {"Authorization": f"Bearer {api_token}",
                         "Content-Type": "text/plain; charset=utf-8"}
        self.dataset = dataset
        self._timeout = httpx.Timeout(timeout_ms / 1000.0)
        self._max_rows = max_rows
        self._http = http

    @classmethod
    def from_config(cls, config: Config, http: httpx.Client,
                    max_rows: int | None = None) -> "CloudflareSQL":
        return cls(api_base=config.cloudflare_api_base,
                   account_id=config.cloudflare_account_id,
                   api_token=config.cloudflare_api_token, dataset=config.dataset,
                   timeout_ms=config.cloudflare_timeout_ms,
                   max_rows=config.query_max_rows if max_rows is None else max_rows,
                   http=http)

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        """Raises aesql's InvalidQuery / ParamsMismatch before calling out, and
        CloudflareError when Cloudflare does not answer with rows."""
        text, fmt = translate(sql, list(params), dataset=self.dataset, format=None)
        if fmt == "TabSeparated":
            # JSON writes inf, -inf and nan alike as null: only the text tells them apart,
            # so this format is passed on as Cloudflare wrote it
            return self._text(self._post(text + " FORMAT TabSeparated"), fmt)
        result = self.run(text + " FORMAT JSON")
        result.format = fmt  # asked for as JSON; written in the query's format by the caller
        return result

    def run(self, clickhouse_sql: str) -> QueryResult:
        """Send SQL that is already in Cloudflare's dialect (bound and checked)."""
        return self._result(self._post(clickhouse_sql))

    def _post(self, clickhouse_sql: str) -> httpx.Response:
        try:
            resp = self._http.post(self.url, content=clickhouse_sql.encode("utf-8"),
                                   headers=self._headers, timeout=self._timeout)
        except httpx.TimeoutException:
            raise CloudflareTimeout(f"Cloudflare did not answer within "
                                    f"{self._timeout.read:g} s") from None
        except httpx.HTTPError as e:
            raise CloudflareUnreachable(f"Cloudflare is unreachable ({type(e).__name__})") from None
        if resp.status_code == 422:
            raise CloudflareQueryRejected(_one_line(resp.text) or "Input was invalid")
        if resp.status_code == 429:
            raise CloudflareUnreachable("Cloudflare is rate limiting queries",
                                        resp.headers.get("Retry-After"))
        if resp.status_code in (401, 403):
            raise CloudflareBadResponse(
                f"Cloudflare refused the API token ({resp.status_code}): check "
                f"CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID")
        if resp.status_code != 200:
            raise CloudflareBadResponse(
                f"Cloudflare answered {resp.status_code}: {_one_line(resp.text)[:200]}")
        return resp

    def _text(self, resp: httpx.Response, fmt: str) -> QueryResult:
        """A row-per-line answer as written, cut at the row cap (a value's own newlines
        are escaped, so every newline ends a row)."""
        body = resp.content
        lines = body.removesuffix(b"\n").split(b"\n") if body else []
        truncated = len(lines) > self._max_rows
        kept = b"".join(line + b"\n" for line in lines[:self._max_rows])
        return QueryResult(meta=[], rows=[], truncated=truncated, format=fmt, text=kept)

    def _result(self, resp: httpx.Response) -> QueryResult:
        try:
            body = resp.json()
            meta = [{"name": m["name"], "type": m["type"]} for m in body["meta"]]
            types = {m["name"]: m["type"] for m in meta}
            rows = [{k: coerce(types.get(k, ""), v) for k, v in row.items()}
                    for row in body["data"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CloudflareBadResponse(
                "Cloudflare's answer is not the JSON of the SQL API") from None
        truncated = len(rows) > self._max_rows
        before = body.get("rows_before_limit_at_least")
        return QueryResult(meta=meta, rows=rows[:self._max_rows], truncated=truncated,
                           rows_before_limit=int(before) if isinstance(before, (int, str))
                           and str(before).isdigit() else None)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:1000]

