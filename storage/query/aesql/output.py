"""The bodies of the FORMAT clause, as Analytics Engine's SQL API writes them (SPEC §3.5).

- `JSON` (the default): `{"meta", "data", "rows", "rows_before_limit_at_least"}`, with
  64-bit integers as strings (ClickHouse quotes them so JavaScript keeps them exact),
  whole Float64 values as whole numbers, NaN and infinities as null.
- `JSONEachRow`: one compact JSON object a line, written as ClickHouse writes it (`/`
  escaped, non-ASCII as UTF-8, control characters and U+2028/U+2029 as \\uXXXX).
- `TabSeparated`: one line a row, no header; tab, newline, backslash and quote escaped
  with a backslash, NULL as \\N, arrays as ['a','b'].
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

from .dialect import FORMATS
from .errors import QueryResult
from .udf import ch_float_str

CONTENT_TYPES = {
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
}
assert set(CONTENT_TYPES) == set(FORMATS)

_WIDE_INT = re.compile(r"^U?Int(64|128|256)$")
_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")


def _inner(type_name: str) -> str:
    wrapped = _WRAPPER.match(type_name)
    return _inner(wrapped.group(1)) if wrapped else type_name


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (inf, -inf, nan) as None, arrays included:
    JSON has no such numbers, and ClickHouse writes them as null in every JSON format."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def json_rows(rows: list[dict]) -> list[dict]:
    """Rows for a JSON body (/query's own, the CLI's --json)."""
    return [{name: json_safe(value) for name, value in row.items()} for row in rows]


def _float_json(x: Any) -> Any:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return x
    x = float(x)
    if not math.isfinite(x):
        return None
    return int(x) if x == int(x) and abs(x) < 1e21 else x


def _json_value(type_name: str) -> Callable[[Any], Any]:
    """A value of the result as the JSON value ClickHouse writes for its type."""
    t = _inner(type_name)
    if t.startswith("Array("):
        item = _json_value(t[6:-1])
        return lambda v: None if v is None else [item(x) for x in v]
    if _WIDE_INT.match(t):
        return lambda v: None if v is None else str(v)
    if t.startswith(("Float", "Decimal")):
        return _float_json
    return json_safe  # a float under a type not met here is still never inf or nan


def _json_text(value: Any) -> str:
    """Compact JSON as ClickHouse writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return ch_float_str(value) if math.isfinite(value) else "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    text = json.dumps(str(value), ensure_ascii=False)
    return text.replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                              "\0": "\\0", "\b": "\\b", "\f": "\\f", "'": "\\'"})


def _tsv_text(value: Any, nested: bool = False) -> str:
    if value is None:
        return "NULL" if nested else "\\N"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return ch_float_str(value) or ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_tsv_text(v, True) for v in value) + "]"
    text = str(value).translate(_TSV_ESCAPES)
    return f"'{text}'" if nested else text


def render(result: QueryResult, fmt: str) -> bytes:
    """The body of `result` in format `fmt` (one of FORMATS)."""
    if result.text is not None:
        if fmt != result.format:
            raise ValueError(f"the answer was written as {result.format}, not {fmt}")
        return result.text
    if fmt == "JSON":
        converters = [(m["name"], _json_value(m["type"])) for m in result.meta]
        data = [{name: conv(row.get(name)) for name, conv in converters}
                for row in result.rows]
        before = len(data) if result.rows_before_limit is None else result.rows_before_limit
        return json.dumps({"meta": result.meta, "data": data, "rows": len(data),
                           "rows_before_limit_at_least": before}).encode("utf-8")
    names = [m["name"] for m in result.meta]
    if fmt == "JSONEachRow":
        wide = {m["name"] for m in result.meta if _WIDE_INT.match(_inner(m["type"]))}
        wide_arrays = {m["name"] for m in result.meta
                       if _inner(m["type"]).startswith("Array(")
                       and _WIDE_INT.match(_inner(_inner(m["type"])[6:-1]))}
        lines = []
        for row in result.rows:
            cells = []
            for name in names:
                value = row.get(name)
                if value is not None and name in wide:
                    value = str(value)
                elif value is not None and name in wide_arrays:
                    value = [str(v) for v in value]
                cells.append(f"{json.dumps(name, ensure_ascii=False)}:{_json_text(value)}")
            lines.append("{" + ",".join(cells) + "}\n")
        return "".join(lines).encode("utf-8")
    if fmt == "TabSeparated":
        return "".join("\t".join(_tsv_text(row.get(n)) for n in names) + "\n"
                       for row in result.rows).encode("utf-8")
    raise ValueError(f"unknown format {fmt}")
