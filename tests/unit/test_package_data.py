"""Configuration files and notebooks come from the package, or from QERBEROS_CONFIG_DIR file by file."""

from __future__ import annotations

import importlib.resources
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics.risk import load_config
from cli import app
from qerberos.errors import ConfigurationError
from qerberos.package_data import CONFIG_FILES, config_file, notebook
from qerberos.settings import get_settings, load_settings

PACKAGED = Path(str(importlib.resources.files("qerberos.config")))


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QERBEROS_CONFIG_DIR", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_without_a_config_dir_every_file_is_the_packaged_default() -> None:
    assert {name: PACKAGED / name for name in CONFIG_FILES} == {name: config_file(name) for name in CONFIG_FILES}
    assert notebook("compliance_report.ipynb").is_file()


def test_a_file_in_the_config_dir_overrides_its_default_and_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "risk.toml").write_text("[operations]\npayment = 1.75\n")
    monkeypatch.setenv("QERBEROS_CONFIG_DIR", str(tmp_path))
    get_settings.cache_clear()
    assert (tmp_path / "risk.toml", PACKAGED / "rules.toml") == (config_file("risk.toml"), config_file("rules.toml"))
    assert 1.75 == load_config().multiplier("payment")


def test_a_config_dir_that_does_not_exist_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QERBEROS_CONFIG_DIR", str(tmp_path / "typo"))
    with pytest.raises(ConfigurationError, match="QERBEROS_CONFIG_DIR"):
        load_settings()


def test_qerberos_config_names_the_file_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rules.toml").write_text("")
    monkeypatch.setenv("QERBEROS_CONFIG_DIR", str(tmp_path))
    get_settings.cache_clear()
    shown = json.loads(CliRunner().invoke(app, ["config"]).stdout)
    assert str(tmp_path) == shown["config_dir"]
    assert str(tmp_path / "rules.toml") == shown["config_files"]["rules.toml"]
    assert str(config_file("risk.toml")) == shown["config_files"]["risk.toml"]


def test_pyproject_lists_every_package_of_the_tree() -> None:
    """pyproject.toml lists its packages (the data packages map other folders), so a new one must be added."""
    repo = Path(__file__).resolve().parents[2]
    setuptools = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = ("qerberos", "cli", "models", "analytics", "pipelines", "api")
    found = {
        ".".join(init.parent.relative_to(repo).parts) for root in roots for init in (repo / root).rglob("__init__.py")
    }
    assert found | set(setuptools["package-dir"]) == set(setuptools["packages"])
