"""What the log raises: its own errors, never sqlite3's."""

from __future__ import annotations

import os
import sqlite3


class LogError(Exception):
    """The log cannot be written or read right now; nothing was committed."""


class LogUnavailable(LogError):
    """Locked for too long, read-only, or an I/O error."""


class LogFull(LogError):
    """The disk (or the database's size limit) is full."""


class LayoutMismatch(LogError):
    """The log was created with another layout than the one it is opened with."""

    def __init__(self, path: str | os.PathLike, recorded: str, wanted: str):
        super().__init__(
            f"The event log {path} holds the {recorded} layout; it cannot be opened with "
            f"ANALYTICS_LAYOUT={wanted}: set ANALYTICS_LAYOUT={recorded}, or point "
            f"ANALYTICS_DB at a log of the {wanted} layout")
        self.recorded, self.wanted = recorded, wanted

def translate(error: sqlite3.Error) -> LogError:
    """The log's error for a failed SQLite call: full, or unavailable."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return LogFull(f"The event log is full: {error}")
    return LogUnavailable(f"The event log cannot be written: {error}")
