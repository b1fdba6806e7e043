"""qerberos_memory_limit_bytes: the setting when given, else the cgroup's limit (v2, then v1), else 0."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from qerberos.resources import cgroup_memory_limit, observe_memory_limit
from qerberos.settings import load_settings


def _cgroup(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("memory.max", "1073741824\n", 1 << 30),  # cgroup v2, as in a container with `memory: 1G`
        ("memory.max", "max\n", 0),  # v2 without a limit
        ("memory/memory.limit_in_bytes", "536870912\n", 1 << 29),  # cgroup v1
        ("memory/memory.limit_in_bytes", "9223372036854771712\n", 0),  # v1 without a limit
    ],
)
def test_the_cgroup_limit_is_read_from_v2_then_v1(tmp_path: Path, relative: str, text: str, expected: int) -> None:
    assert expected == cgroup_memory_limit(_cgroup(tmp_path, relative, text))


def test_no_readable_cgroup_means_no_known_limit(tmp_path: Path) -> None:
    assert 0 == cgroup_memory_limit(tmp_path)


def test_the_setting_wins_over_the_cgroup_and_sets_the_gauge(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, "memory.max", "1073741824\n")
    settings = dataclasses.replace(load_settings(), memory_limit_bytes=2 << 30)
    assert 2 << 30 == observe_memory_limit(settings, root)
    assert float(2 << 30) == REGISTRY.get_sample_value("qerberos_memory_limit_bytes")
    assert 1 << 30 == observe_memory_limit(dataclasses.replace(settings, memory_limit_bytes=0), root)
    assert float(1 << 30) == REGISTRY.get_sample_value("qerberos_memory_limit_bytes")
