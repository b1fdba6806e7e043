"""The README keeps its promises: the two commands, and every setting with its variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from qerberos.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_shows_the_two_commands_of_a_fresh_machine() -> None:
    assert ("make run" in README, "make test" in README) == (True, True)


def test_readme_lists_every_setting() -> None:
    variables = {f"QERBEROS_{field.name.upper()}" for field in dataclasses.fields(Settings)}
    assert set() == {name for name in variables if f"`{name}`" not in README}
