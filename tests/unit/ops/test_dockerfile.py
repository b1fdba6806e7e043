"""The Dockerfile, read as text: small multi-stage slim build, non-root, health-checked, `qerberos serve`."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex

from qerberos.settings import Settings
from tests.unit.ops._deploy import DOCKERFILE, REPO


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _instructions() -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert pending == "", "the Dockerfile ends inside a continued line"
    return [Instruction(*[*text.split(None, 1), ""][:2]) for text in logical]


def _final_stage() -> list[Instruction]:
    instructions = _instructions()
    last_from = max(index for index, item in enumerate(instructions) if item.keyword.upper() == "FROM")
    return instructions[last_from:]


def _keyword(stage: list[Instruction], keyword: str) -> list[str]:
    return [item.arguments for item in stage if item.keyword.upper() == keyword]


def test_every_stage_builds_from_python_311_slim_and_there_are_two() -> None:
    bases = [arguments.split()[0] for arguments in _keyword(_instructions(), "FROM")]
    assert bases == ["python:3.11-slim", "python:3.11-slim"]


def test_final_stage_copies_only_the_built_environment_from_the_build_stage() -> None:
    assert _keyword(_final_stage(), "COPY") == ["--from=build /opt/qerberos /opt/qerberos"]


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = _keyword(_final_stage(), "USER")
    assert users, "no USER in the final stage: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert re.fullmatch(r"[1-9][0-9]*", user), "a numeric uid lets orchestrators verify runAsNonRoot"


def test_healthcheck_probes_health_live_on_port_3000() -> None:
    (healthcheck,) = _keyword(_final_stage(), "HEALTHCHECK")
    assert " CMD " in f" {healthcheck} "
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    probe = " ".join(command)
    assert "/health/live" in probe
    assert "'3000'" in probe or ":3000/" in probe
    assert "3000" in _keyword(_final_stage(), "EXPOSE")


def test_default_command_is_qerberos_serve() -> None:
    assert [json.loads(cmd) for cmd in _keyword(_final_stage(), "CMD")] == [["qerberos", "serve"]]


def test_qerberos_home_is_a_volume_at_var_lib_qerberos() -> None:
    environment = " ".join(_keyword(_final_stage(), "ENV"))
    assert "QERBEROS_HOME=/var/lib/qerberos" in shlex.split(environment)
    assert [json.loads(volume) for volume in _keyword(_final_stage(), "VOLUME")] == [["/var/lib/qerberos"]]


def test_image_sets_only_qerberos_variables_that_settings_reads() -> None:
    fields = {f"QERBEROS_{field.name.upper()}" for field in dataclasses.fields(Settings)}
    assigned = {
        word.split("=", 1)[0]
        for arguments in _keyword(_instructions(), "ENV")
        for word in shlex.split(arguments)
        if word.startswith("QERBEROS_")
    }
    assert assigned
    assert set() == assigned - fields


def test_build_context_sources_exist_and_are_not_docker_ignored() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = [
        word
        for arguments in _keyword(_instructions(), "COPY")
        if not arguments.startswith("--from")
        for word in arguments.split()[:-1]
    ]
    packages = {"qerberos", "cli", "models", "analytics", "api", "pipelines"}
    package_data = {"config", "notebooks"}  # pyproject.toml's package-dir: shipped inside the qerberos package
    assert {"pyproject.toml", "README.md", *packages, *package_data} == set(sources)
    assert [source for source in sources if not (REPO / source).exists()] == []
    assert set() == set(sources) & ignored
    assert {".venv", ".git", "data", "tests"} <= ignored
