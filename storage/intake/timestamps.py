"""Times as SPEC §7 writes them: ISO 8601 in UTC with milliseconds
(`2026-11-24T17:56:30.123Z`), to and from Unix milliseconds."""

from __future__ import annotations

from datetime import datetime, timezone


def format_time(received_ms: int) -> str:
    seconds, millis = divmod(received_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def parse_time(text: str) -> int:
    """An ISO 8601 time (UTC when no offset is given) as Unix milliseconds."""
    if not isinstance(text, str) or not text:
        raise ValueError("receivedAt must be an ISO 8601 time such as 2026-11-24T17:56:30.123Z")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"receivedAt {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)
