"""GET /openapi.json (SPEC §12): valid OpenAPI 3.1, built from the JSON Schemas that
validate the requests, with exactly the app's routes (read from Falcon's router), and the
README's example bodies valid against it."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from typing import Any

import falcon.inspect
import jsonschema
import pytest
from conftest import ROOT
from hoox_callers import CALLERS
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from storage.intake import layouts
from storage.intake.events import load_schema

README = (ROOT / "README.md").read_text()
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


@pytest.fixture(params=["profile", "hoox"])
def layout_client(request, make_client, config):
    return make_client(dataclasses.replace(config, layout=request.param)), request.param


def document(client: Any) -> dict[str, Any]:
    result = client.simulate_get("/openapi.json", headers={"X-Internal-Auth-Key": ""})
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("application/json")
    return result.json


def body_validator(doc: dict[str, Any], path: str) -> jsonschema.Draft202012Validator:
    """The request body schema of POST `path`, with the document's references resolvable."""
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    registry = Registry().with_resource(
        "urn:openapi", Resource(contents=doc, specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": "urn:openapi" + schema["$ref"]},
                                           registry=registry)


def test_openapi_spec_validator_accepts_it_in_every_layout(layout_client):
    client, _ = layout_client
    doc = document(client)
    validate(doc)
    assert doc["openapi"] == "3.1.0"


def test_its_paths_are_exactly_the_routes_of_the_app(layout_client):
    client, layout = layout_client
    doc = document(client)
    # the routes as Falcon reports them, read here rather than through app_routes, which
    # the document is built from: {OpenAPI path: methods with a responder of the app's}
    routes = {re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", route.path):
              {m.method.lower() for m in route.methods if not m.internal}
              for route in falcon.inspect.inspect_routes(client.app)}
    routes = {path: methods for path, methods in routes.items() if methods}
    assert {"/", "/health", "/status", "/query", "/metrics", "/openapi.json",
            "/track/batch", "/client/v4/accounts/{account_id}/analytics_engine/sql"} <= set(routes)
    assert set(routes) == set(doc["paths"])
    for path, methods in routes.items():
        described = {m for m in doc["paths"][path] if m in METHODS}
        assert described == methods, path
        for method in described:
            op = doc["paths"][path][method]
            assert "x-undocumented" not in op, f"{method.upper()} {path} is not described"
            assert op["responses"], path
    for type_ in layouts.get(layout).types:
        assert f"/track/{type_}" in doc["paths"]
    if layout == "hoox":
        assert "/track/trade" in doc["paths"] and "/track/signal" in doc["paths"]
    else:
        assert "/track/trade" not in doc["paths"]


def test_request_bodies_are_the_schemas_files_and_errors_have_the_one_shape(layout_client):
    client, layout = layout_client
    doc = document(client)
    for type_ in layouts.get(layout).types.values():
        ref = doc["paths"][f"/track/{type_.name}"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["$ref"]
        name = ref.rsplit("/", 1)[1]
        component = doc["components"]["schemas"][name]
        source = load_schema(type_.schema)
        # The same file: every key but the dialect markers, references re-pointed.
        assert set(component) == set(source) - {"$schema", "$id"}
        assert json.dumps(component).replace(f"#/components/schemas/{name}/definitions/",
                                             "#/definitions/") == \
            json.dumps({k: v for k, v in source.items() if k not in ("$schema", "$id")})
        responses = doc["paths"][f"/track/{type_.name}"]["post"]["responses"]
        for code in ("400", "401", "413", "415", "503", "507"):
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["success", "error"]


def test_an_invalid_body_fails_its_described_schema_as_it_fails_the_route(make_client, config):
    client = make_client(config)
    doc = document(client)
    validator = body_validator(doc, "/track/api-call")
    bad = {"requestId": "x", "payload": {"worker": "w", "endpoint": "/e",
                                         "latencyMs": "slow", "success": True}}
    assert not validator.is_valid(bad)
    assert client.simulate_post("/track/api-call", json=bad).status_code == 400


def readme_bodies() -> list[tuple[str, str, dict[str, Any]]]:
    """(layout, path, JSON body) of every `curl … $URL/<path> … -d '<json>'` in the README:
    those of its "Layouts" section are the hoox layout's."""
    found = []
    for section in re.split(r"^## ", README, flags=re.M):
        layout = "hoox" if section.startswith("Layouts") else "profile"
        for path, rest in re.findall(r"^curl -s \$URL(/\S+)(.*?)(?=^\S|\Z)", section,
                                     flags=re.M | re.S):
            words = shlex.split(rest.replace("\\\n", " ").split("\n#")[0], comments=False)
            if "-d" in words:
                found.append((layout, path, json.loads(words[words.index("-d") + 1])))
    return found


def test_the_readmes_example_bodies_validate_against_it(make_client, config, tmp_path):
    examples = readme_bodies()
    assert {(layout, p) for layout, p, _ in examples} >= {
        ("profile", "/track/api-call"), ("profile", "/track/batch"), ("profile", "/query"),
        ("hoox", "/track/trade")}
    docs = {name: document(make_client(dataclasses.replace(
        config, layout=name, db_path=str(tmp_path / f"{name}.db"))))
        for name in ("profile", "hoox")}
    for layout, path, body in examples:
        errors = list(body_validator(docs[layout], path).iter_errors(body))
        assert errors == [], (layout, path, body, errors)


def test_the_platforms_bodies_validate_against_the_hoox_description(make_client, config):
    doc = document(make_client(dataclasses.replace(config, layout="hoox")))
    for caller in CALLERS:
        validator = body_validator(doc, f"/track/{caller.route}")
        assert validator.is_valid(caller.body), caller.name


def test_it_needs_no_key_and_the_readme_links_it(make_client, config):
    client = make_client(config)
    assert client.simulate_get("/openapi.json",
                               headers={"X-Internal-Auth-Key": "wrong"}).status_code == 200
    assert "/openapi.json" in README
