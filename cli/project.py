"""A Workers project as `analytics-worker dev` sees it: its wrangler config, found and read
as wrangler finds and reads it, and the two configs derived from it and from the relay's
for one `wrangler dev` (SPEC §6.3). Nothing here writes the project's own config."""

from __future__ import annotations

import copy
import datetime
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import json5

# wrangler looks for each name in the directory and every parent before it tries the next
# name (its findWranglerConfig), so a wrangler.json above wins over a wrangler.jsonc here.
CONFIG_NAMES = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")
# The relay's Worker and the entrypoint a swapped binding reaches (SPEC §6.2).
RELAY_WORKER = "analytics-worker"
ENTRYPOINT = "AnalyticsEngineDataset"
# The relay environment that is the Worker named analytics-worker for local work.
RELAY_DEV_ENV = "dev"
# How the derived config is named: beside the project's own, where wrangler resolves
# `main`, assets and .dev.vars as before, under a name it never picks up by itself.
DERIVED_PREFIX = ".wrangler-analytics-worker-dev-"


class ProjectError(Exception):
    """A project `dev` cannot run: the message says what was wrong and what to do."""


@dataclass(frozen=True)
class Dataset:
    """A dataset binding kept locally; `by_hand` when the config already swapped it."""

    binding: str
    dataset: str
    by_hand: bool = False


def relay_dir() -> Path:
    """The relay's files: relay/ in a clone, the installed package's copy otherwise."""
    return Path(str(resources.files("relay")))


def find_config(cwd: Path) -> Path:
    for name in CONFIG_NAMES:
        for directory in (cwd, *cwd.parents):
            if (directory / name).is_file():
                return directory / name
    raise ProjectError(f"no wrangler config found: looked for {', '.join(CONFIG_NAMES)} in "
                       f"{cwd} and the directories above it; run this in a Workers project "
                       f"or name the config with -c")


def read_config(path: Path) -> dict[str, Any]:
    """The config as a dict: TOML by its extension, JSON with comments and trailing commas
    otherwise, as wrangler reads them. A malformed file is a ProjectError with the
    parser's line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # wrangler drops a UTF-8 BOM too
    except OSError as e:
        raise ProjectError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ProjectError(f"{path} is not UTF-8 text") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ProjectError(f"{path}: {_toml_place(str(e))}") from None
    else:
        try:
            data = json5.loads(text)
        except ValueError as e:
            raise ProjectError(f"{path}: {_json5_place(str(e))}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: the config is not an object")
    return data


def _json5_place(message: str) -> str:
    # json5 says `<string>:4 Unexpected "," at column 13`: line and column up front.
    match = re.match(r"<string>:(\d+) (.*) at column (\d+)$", message, flags=re.S)
    if not match:
        return message
    return f"line {match[1]}, column {match[3]}: " + match[2].replace("\n", "\\n")


def _toml_place(message: str) -> str:
    # tomllib says `Invalid value (at line 3, column 9)`.
    match = re.match(r"(.*) \(at line (\d+), column (\d+)\)$", message)
    return f"line {match[2]}, column {match[3]}: {match[1]}" if match else message


def section(config: dict[str, Any], env: str | None, path: Path) -> dict[str, Any]:
    """The part of the config that holds the chosen environment's bindings: env.<name>,
    or the top level when no environment is chosen or the config has none (wrangler then
    warns and keeps the top level)."""
    envs = config.get("env")
    if env is None or not envs:
        return config
    if not isinstance(envs, dict) or env not in envs:
        known = ", ".join(sorted(envs)) if isinstance(envs, dict) else "none"
        raise ProjectError(f'{path} has no environment "{env}" (it has: {known})')
    return envs[env]


def derive(config: dict[str, Any], env: str | None, path: Path
           ) -> tuple[dict[str, Any], list[Dataset]]:
    """A copy of the config in which every Analytics Engine dataset of the chosen
    environment is a service binding to the relay's entrypoint (SPEC §6.2), and the
    datasets kept. A binding the config already swapped by hand stays as it is. The top
    level's datasets are swapped too when another environment runs: they do not run, and
    wrangler would otherwise warn that the environment lacks them."""
    derived = copy.deepcopy(config)
    place = section(derived, env, path)
    name = place.get("name") or (f"{config.get('name')}-{env}" if place is not derived
                                 else config.get("name"))
    if name == RELAY_WORKER:
        raise ProjectError(f'{path}: the Worker is named "{RELAY_WORKER}", as the relay '
                           f"that keeps its datasets is, and wrangler runs one Worker of a "
                           f"name: give it another name for local work")
    kept = _swap(place, path)
    if place is not derived:
        _swap(derived, path)
    return derived, kept


def _swap(place: dict[str, Any], path: Path) -> list[Dataset]:
    services = list(place.get("services") or [])
    kept: list[Dataset] = []
    for service in services:
        props = service.get("props") if isinstance(service, dict) else None
        if (isinstance(props, dict) and service.get("service") == RELAY_WORKER
                and service.get("entrypoint") == ENTRYPOINT and props.get("dataset")):
            kept.append(Dataset(service.get("binding", ""), str(props["dataset"]), True))
    by_hand = {d.binding for d in kept}
    for binding in place.get("analytics_engine_datasets") or []:
        if not isinstance(binding, dict) or "binding" not in binding:
            raise ProjectError(f"{path}: an analytics_engine_datasets entry without a binding")
        if binding["binding"] in by_hand:
            continue  # the hand-made swap wins, as the developer meant
        # A binding without a dataset is kept under its binding's name.
        dataset = str(binding.get("dataset") or binding["binding"])
        services.append({"binding": binding["binding"], "service": RELAY_WORKER,
                         "entrypoint": ENTRYPOINT, "props": {"dataset": dataset}})
        kept.append(Dataset(binding["binding"], dataset))
    if "analytics_engine_datasets" in place:
        place["analytics_engine_datasets"] = []
    if services:
        place["services"] = services
    return kept


def derive_relay(relay: dict[str, Any], main: Path, env: str | None,
                 service_url: str) -> dict[str, Any]:
    """The relay's config for one `wrangler dev` beside the project's Worker: its `dev`
    environment (the Worker named analytics-worker) at the top level, and again under the
    project's environment name, since wrangler refuses a name that a config with
    environments does not define. `main` is absolute: the file lives elsewhere."""
    dev = copy.deepcopy(relay["env"][RELAY_DEV_ENV])
    dev["vars"] = {**dev.get("vars", {}), "ANALYTICS_SERVICE_URL": service_url}
    top = {k: v for k, v in relay.items() if k not in ("env", "dev")}
    derived = {**top, **copy.deepcopy(dev), "main": str(main)}
    if env is not None:
        derived["env"] = {env: dev}
    return derived


def write_json(path: Path, data: dict[str, Any]) -> None:
    # TOML dates and times have no JSON form: wrangler reads them as strings anyway.
    def plain(value: Any) -> str:
        if isinstance(value, (datetime.date, datetime.time)):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON")
    path.write_text(json.dumps(data, indent=2, default=plain) + "\n", encoding="utf-8")


def derived_path(config_path: Path, pid: int) -> Path:
    return config_path.parent / f"{DERIVED_PREFIX}{pid}.json"
