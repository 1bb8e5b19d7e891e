"""`GET /openapi.json` (SPEC §12): an OpenAPI 3.1 description of the app's routes.

The request bodies are the JSON Schemas in `schemas/`, the very files that validate the
requests, loaded when the description is built: each becomes a component, its internal
references (`#/definitions/…`) pointed at where it now sits, its `$schema` and `$id`
dropped (the document is OpenAPI's dialect, JSON Schema 2020-12, of which these draft-07
schemas use only the common part). The routes come from the caller (the app's router);
what each one takes and answers is described here, by route template. A route with no
description still appears, marked `x-undocumented`, and the tests refuse that.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, Mapping

from .config import VERSION
from .intake import layouts
from .intake.events import load_schema

ERROR = {"$ref": "#/components/schemas/Error"}
SQL_API = "/client/v4/accounts/{account_id}/analytics_engine/sql"

# The answer codes every route of the key may give, with what they mean.
_ERRORS = {
    "400": "The body is malformed or fails its schema (every problem, with its JSON path)",
    "401": "No valid internal key",
    "413": "The body is over the limit",
    "415": "The body is not JSON",
    "422": "The Idempotency-Key was used before with another body; nothing was stored",
    "503": "The log (or the service's writer) is unavailable; nothing was stored",
    "507": "The disk is full; nothing was stored",
}


def component(name: str) -> dict[str, Any]:
    """schemas/<name>.json as a component of the document."""
    schema = load_schema(name)
    schema.pop("$schema", None)
    schema.pop("$id", None)
    return _rebase(schema, f"#/components/schemas/{name}/definitions/")


def _rebase(node: Any, base: str) -> Any:
    if isinstance(node, dict):
        return {k: (base + v[len("#/definitions/"):]
                    if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/")
                    else _rebase(v, base)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v, base) for v in node]
    return node


def _json(schema: Mapping[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _json(ERROR, _ERRORS[code]) for code in codes}


def _body(name: str) -> dict[str, Any]:
    return {"required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


_TRACK_ANSWER = {
    "type": "object", "required": ["success"],
    "properties": {
        "success": {"const": True},
        "duplicate": {"type": "boolean", "description": "The requestId was already stored"},
        "ignored": {"type": "array", "items": {"type": "string"},
                    "description": "Keys accepted and kept that no data point carries"},
    }}

_BATCH_ANSWER = {
    "type": "object", "required": ["success", "accepted", "duplicates"],
    "properties": {
        "success": {"const": True},
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "ignored": {"type": "array", "items": {
            "type": "object", "properties": {"index": {"type": "integer"},
                                             "keys": {"type": "array",
                                                      "items": {"type": "string"}}}}},
    }}

_QUERY_ANSWER = {
    "type": "object", "required": ["success", "results", "meta", "rows", "source"],
    "properties": {
        "success": {"const": True},
        "results": {"type": "array", "items": {"type": "object"}},
        "meta": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"},
                                             "type": {"type": "string"}}}},
        "rows": {"type": "integer"},
        "source": {"enum": ["local", "cloudflare"]},
        "replayLagMs": {"type": "integer"},
        "truncated": {"type": "boolean"},
    }}

_TEXT_FORMATS = {"application/x-ndjson": {"schema": {"type": "string"}},
                 "text/tab-separated-values": {"schema": {"type": "string"}}}

_CLOUDFLARE_ERROR = {
    "type": "object", "required": ["success", "errors"],
    "properties": {"success": {"const": False},
                   "errors": {"type": "array", "items": {
                       "type": "object", "properties": {"code": {"type": "integer"},
                                                        "message": {"type": "string"}}}},
                   "messages": {"type": "array"}, "result": {"type": "null"}}}


# The event's requestId when the body carries none (SPEC §6.1): a retried delivery is a
# duplicate, never a second event.
_IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "Names the request: an event whose body has no "
                                   "requestId gets one made from the key (in a batch, from "
                                   "the key and the item's place), so the same request sent "
                                   "again is a duplicate; the key sent again with another "
                                   "body is a 422",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


def _operations(layout: layouts.Layout) -> dict[str, dict[str, Any]]:
    """{route template: {method: operation}} of every route this service has."""
    ops: dict[str, dict[str, Any]] = {}
    for type_ in layout.types.values():
        ops[f"/track/{type_.name}"] = {"post": {
            "summary": f"Store one {type_.name} event",
            "description": "A 2xx means the event is committed to the log; a repeated "
                           "requestId answers `duplicate: true` and is stored once.",
            "tags": ["ingest"], "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": _body(type_.schema),
            "responses": {"200": _json(_TRACK_ANSWER, "Committed (or a duplicate)"),
                          **_errors("400", "401", "413", "415", "422", "503", "507")}}}
    ops["/track/batch"] = {"post": {
        "summary": "Store up to 1,000 events, all or nothing",
        "description": "Each item is the body of the route its `type` names (default "
                       f"api-call; types: {', '.join(layout.types)}).",
        "tags": ["ingest"], "parameters": [_IDEMPOTENCY_KEY], "requestBody": _body("batch"),
        "responses": {"200": _json(_BATCH_ANSWER, "Committed"),
                      **_errors("400", "401", "413", "415", "422", "503", "507")}}}
    ops["/track/datapoints"] = {"post": {
        "summary": "Store up to 1,000 raw data points of one dataset, all or nothing",
        "description": "What a Worker passed to writeDataPoint (through the relay's "
                       "AnalyticsEngineDataset entrypoint), stored under its dataset with "
                       "the time it was received and answered by `FROM <dataset>`. Never "
                       "replayed. Each point must fit Analytics Engine's limits.",
        "tags": ["ingest"],
        "parameters": [{**_IDEMPOTENCY_KEY,
                        "description": "Point i gets a request id made from the key and "
                                       "i, so a body sent again is all duplicates; the key "
                                       "sent again with another body is a 422"}],
        "requestBody": _body("datapoints"),
        "responses": {"200": _json(_BATCH_ANSWER, "Committed"),
                      **_errors("400", "401", "413", "415", "422", "503", "507")}}}
    ops["/query"] = {"post": {
        "summary": "Analytics Engine SQL, from Cloudflare or the local log",
        "tags": ["query"], "requestBody": _body("query"),
        "responses": {
            "200": {"description": "The rows; FORMAT JSONEachRow or TabSeparated pick "
                                   "another body",
                    "content": {"application/json": {"schema": _QUERY_ANSWER},
                                **_TEXT_FORMATS}},
            **_errors("400", "401", "413", "415"),
            "422": _json(ERROR, "The SQL is invalid or outside the dialect, or its answer "
                                "is over ANALYTICS_QUERY_MAX_ANSWER_BYTES"),
            "502": _json(ERROR, "Cloudflare failed"),
            "503": _json(ERROR, "Cloudflare or the log is unavailable, or the worker holds "
                                "as many heavy queries as it takes (Retry-After)"),
            "504": _json(ERROR, "The query ran out of time")}}}
    ops[SQL_API] = {"post": {
        "summary": "Analytics Engine's SQL API, served here",
        "description": "The body is the SQL text; any account id is accepted.",
        "tags": ["query"], "security": [{"bearer": []}],
        "parameters": [{"name": "account_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True,
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
        "responses": {
            "200": {"description": "As Analytics Engine answers (FORMAT picks the body)",
                    "content": {"application/json": {"schema": {"type": "object"}},
                                **_TEXT_FORMATS}},
            "401": _json(_CLOUDFLARE_ERROR, "No valid Bearer token"),
            "413": _json(_CLOUDFLARE_ERROR, "The body is over the limit"),
            "422": {"description": "The SQL is invalid, or its answer is over "
                                   "ANALYTICS_QUERY_MAX_ANSWER_BYTES",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "503": _json(_CLOUDFLARE_ERROR, "The worker holds as many heavy queries as it "
                                            "takes (Retry-After), or the log is unavailable"),
            "504": _json(_CLOUDFLARE_ERROR, "The query ran out of time")}}}
    ops["/health"] = {"get": {
        "summary": "Whether the log takes writes", "tags": ["operating"], "security": [],
        "responses": {"200": _json({"type": "object", "required": ["status"],
                                    "properties": {"status": {"const": "ok"}}}),
                      "503": _json(ERROR, "The log is not writable")}}}
    ops["/status"] = {"get": {
        "summary": "The service for a person: events, log size, replay, Cloudflare",
        "tags": ["operating"],
        "responses": {"200": _json({"type": "object", "required": ["success", "events"],
                                    "properties": {"success": {"const": True},
                                                   "events": {"type": "integer"},
                                                   "datasets": {"type": "array", "items": {
                                                       "type": "object", "properties": {
                                                           "dataset": {"type": "string"},
                                                           "rows": {"type": "integer"},
                                                           "replayed": {"type": "boolean"}}}},
                                                   "logBytes": {"type": "integer"},
                                                   "replay": {"type": "object"},
                                                   "mirror": {"type": "object", "properties": {
                                                       "mode": {"enum": ["chdb", "off"]},
                                                       "state": {"enum": [
                                                           "waiting", "running", "off",
                                                           "not running", "not installed"]},
                                                       "startsAtEvents": {"type": "integer"}}},
                                                   "cloudflare": {"type": "object"}}}),
                      **_errors("401")}}}
    ops["/metrics"] = {"get": {
        "summary": "The service's figures in Prometheus's text format",
        "tags": ["operating"], "security": [{"bearer": []}, {"internalKey": []}],
        "responses": {"200": {"description": "OpenMetrics-compatible text",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      **_errors("401")}}}
    ops["/openapi.json"] = {"get": {
        "summary": "This description", "tags": ["operating"], "security": [],
        "responses": {"200": _json({"type": "object"})}}}
    ops["/"] = {"get": {
        "summary": "The dashboard's page", "tags": ["dashboard"], "security": [],
        "responses": {"200": {"description": "HTML",
                              "content": {"text/html": {"schema": {"type": "string"}}}}}}}
    ops["/static/{name}"] = {"get": {
        "summary": "The dashboard's script, style and queries", "tags": ["dashboard"],
        "security": [],
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file"},
                      "404": _json(ERROR, "No such file")}}}
    return ops


def _path(template: str) -> str:
    """A Falcon template as an OpenAPI path: `{name:int}` is `{name}`."""
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", template)


def build(routes: Mapping[str, list[str]], layout: str) -> dict[str, Any]:
    """The document for `routes` ({template: [methods]}, the app's router) in `layout`."""
    the_layout = layouts.get(layout)
    known = _operations(the_layout)
    names = sorted({"batch", "datapoints", "query", *(t.schema for t in the_layout.types.values())})
    paths: dict[str, Any] = {}
    for template, methods in sorted(routes.items()):
        described = known.get(template, {})
        item: dict[str, Any] = {}
        for method in methods:
            op = described.get(method.lower())
            if op is None:
                op = {"summary": f"{method} {template}", "x-undocumented": True,
                      "responses": {"default": _json(ERROR, "An error")}}
            item[method.lower()] = copy.deepcopy(op)
        paths[_path(template)] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "analytics-worker", "version": VERSION,
                 "description": f"Telemetry ingest and Analytics Engine SQL ({layout} "
                                "layout). Every error is `Error`."},
        "servers": [{"url": "/"}],
        "security": [{"internalKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "internalKey": {"type": "apiKey", "in": "header",
                                "name": "X-Internal-Auth-Key"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The internal key as a Bearer token"}},
            "schemas": {
                "Error": {"type": "object", "required": ["success", "error"],
                          "properties": {
                              "success": {"const": False},
                              "error": {"type": "string"},
                              "details": {"type": "array", "items": {
                                  "type": "object", "required": ["path", "message"],
                                  "properties": {"path": {"type": "string"},
                                                 "message": {"type": "string"}}}},
                              "source": {"enum": ["local", "cloudflare"]}}},
                **{name: component(name) for name in names}}},
    }


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=1).encode()
