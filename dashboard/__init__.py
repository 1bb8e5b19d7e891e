"""The dashboard's static files (SPEC §10): the page, its scripts (`dashboard.js`, the
overview; `explore.js`, Explore) and style, and the Analytics Engine SQL it sends
(`queries.json`, read by the page and by the tests).

Everything is read from the package once, so the service serves only these files."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any, NamedTuple

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}


class Asset(NamedTuple):
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of the package by name (no directories, no Python)."""
    assets = {}
    for entry in resources.files(__name__).iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = Asset(entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


def load_queries() -> dict[str, Any]:
    return json.loads(resources.files(__name__).joinpath("queries.json").read_text("utf-8"))


def table_name(dataset: str) -> str:
    """The dataset as it appears after FROM (the page does the same)."""
    return dataset if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", dataset) else f'"{dataset}"'


def expand(sql: str, dataset: str, since: str = "", bucket: str = "") -> str:
    """A query with its placeholders filled in, as the page sends it."""
    return (sql.replace("{table}", table_name(dataset)).replace("{since}", since)
            .replace("{bucket}", bucket))
