"""Paths and parsing shared by the ops tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROMETHEUS_DIR = REPO / "ops" / "prometheus"
DEV_ENV_FILE = REPO / "ops" / "dev" / "compose.env"

# Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}.
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
                       r"(?:(?P<operator>:?[-?])(?P<argument>[^}]*))?\})")  # fmt: skip


class MissingVariable(Exception):
    """A required variable (``${NAME:?message}``) is unset or empty: compose refuses to start."""


def interpolate(text: str, environment: Mapping[str, str]) -> str:
    """``text`` with variables replaced the way ``docker compose`` replaces them."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["plain"] or match["braced"]
        value = environment.get(name)
        operator, argument = match["operator"], match["argument"] or ""
        unset = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if operator is not None and operator.endswith("?") and unset:
            raise MissingVariable(f"{name}: {argument}")
        if operator is not None and operator.endswith("-") and unset:
            return argument
        return value or ""

    return _VARIABLE.sub(replace, text)


def read_env_file(path: Path) -> dict[str, str]:
    """A compose ``--env-file``: NAME=value lines; blank lines and ``#`` comment lines skipped."""
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs if not name.lstrip().startswith("#")}


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_compose(environment: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml with every string value interpolated with ``environment``, as compose does it
    (comments are not interpolated; raises ``MissingVariable`` where compose would refuse)."""

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return interpolate(node, environment)
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    document: dict[str, Any] = walk(load_yaml(COMPOSE_FILE))
    return document
