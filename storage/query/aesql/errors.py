"""What the engine raises, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "Input was invalid: "


class InvalidQuery(Exception):
    """SQL outside Analytics Engine's dialect or invalid: HTTP 422."""

    def __init__(self, message: str):
        super().__init__(message if message.startswith(PREFIX) else PREFIX + message)


class AnswerTooLarge(InvalidQuery):
    """The answer would be over its cap of bytes (ANALYTICS_QUERY_MAX_ANSWER_BYTES): HTTP
    422, found before the whole answer is built."""

    def __init__(self, max_bytes: int):
        super().__init__(
            f"the answer is over the limit of {max_bytes} bytes "
            "(ANALYTICS_QUERY_MAX_ANSWER_BYTES); select fewer rows or columns, or narrow "
            "the time range")
        self.max_bytes = max_bytes


class ParamsMismatch(Exception):
    """The params do not fit the `?` placeholders: HTTP 400."""


class QueryTimeout(Exception):
    """The local query ran past ANALYTICS_QUERY_TIMEOUT_MS: HTTP 504."""


@dataclass
class QueryResult:
    meta: list[dict]
    rows: list[dict]
    truncated: bool = False
    format: str | None = None  # the query's FORMAT clause, if it had one
    # rows the query had before its LIMIT cut them (the SQL API's
    # rows_before_limit_at_least); None when not counted
    rows_before_limit: int | None = None
    # the body as the source wrote it, in `format` (Cloudflare's TabSeparated); when
    # set, it is the answer and `rows` is empty
    text: bytes | None = None
