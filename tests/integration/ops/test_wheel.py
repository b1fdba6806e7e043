"""The artefact operators run: the wheel, built from what the Dockerfile copies, installed outside the checkout.

The build context is assembled as ``docker build`` would (the build stage's ``COPY`` lines, minus what
``.dockerignore`` excludes), the wheel is built from it, its file list is checked against the checkout
(every module, the default configuration, the notebooks, the event schema), and it is installed
non-editable into a fresh virtual environment. From a working directory that is neither the checkout nor
the home, the installed ``qerberos`` then runs ``init``, ``config``, ``report schedule``, ``detect`` and
``serve`` with embedded detection, answering ``POST /risk-score`` and producing a compliance report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.api.conftest import event_body
from tests.integration.ops.stack import REPO, Service, running

pytestmark = [pytest.mark.slow, pytest.mark.live_detection]

# Where a checkout directory lands in the wheel (pyproject.toml's package-dir).
PACKAGE_DIRS = {"config": "qerberos/config", "notebooks": "qerberos/notebooks"}
METRICS_TOKEN = "wheel-test-metrics-token"
STARTUP_SECONDS = 180.0  # a loaded machine: the API with embedded detection imports MLflow and PyOD


def _build_stage_copies(dockerfile: str) -> list[tuple[str, str]]:
    """``(source, destination)`` of each ``COPY`` of the first stage (the one that builds the wheel)."""
    first_stage = dockerfile.split("\nFROM ", 2)[1]
    copies = []
    for line in first_stage.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--from") for word in words):
            *sources, destination = words[1:]
            copies.extend((source, destination) for source in sources)
    return copies


def _dockerignore_patterns(text: str) -> list[re.Pattern[str]]:
    """``.dockerignore`` lines as regular expressions over context-relative paths (Go ``filepath.Match`` plus
    ``**``, as Docker reads them); an exception line (``!``) is not supported and fails the test."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), f".dockerignore exceptions are not modelled here: {line}"
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", line.strip("/"))
        )
        patterns.append(re.compile(regex.replace(".*/", "(.*/)?")))
    return patterns


def _ignored(path: PurePosixPath, patterns: list[re.Pattern[str]]) -> bool:
    """Docker excludes a path when a pattern matches it or one of its parent directories."""
    candidates = [str(path), *(str(parent) for parent in path.parents if str(parent) != ".")]
    return any(pattern.fullmatch(candidate) for pattern in patterns for candidate in candidates)


def _docker_build_context(target: Path) -> Path:
    """The files the Dockerfile's build stage sees under its WORKDIR, copied to ``target``."""
    patterns = _dockerignore_patterns((REPO / ".dockerignore").read_text())
    for source, destination in _build_stage_copies((REPO / "Dockerfile").read_text()):
        origin = REPO / source
        files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
        for file in files:
            if _ignored(PurePosixPath(file.relative_to(REPO).as_posix()), patterns):
                continue
            inside = file.relative_to(origin) if origin.is_dir() else Path(file.name)
            landed = target / destination / inside
            landed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, landed)
    return target


def _expected_wheel_files() -> set[str]:
    """Every module of our packages and every data file they read at run time, as wheel paths."""
    expected = set()
    for top in ("qerberos", "cli", "models", "analytics", "pipelines", "api"):
        for file in (REPO / top).rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".md":
                expected.add(file.relative_to(REPO).as_posix())
    for directory, package_path in PACKAGE_DIRS.items():
        for file in (REPO / directory).iterdir():
            if file.is_file():
                expected.add(f"{package_path}/{file.name}")
    return expected


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh virtual environment holding the wheel built from the Docker context."""
    root = tmp_path_factory.mktemp("wheel")
    context = _docker_build_context(root / "context")
    dist = root / "dist"
    built = subprocess.run(
        ["uv", "build", "--quiet", "--wheel", "--out-dir", str(dist), str(context)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == built.returncode, built.stderr
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set() == _expected_wheel_files() - names
    assert [] == sorted(name for name in names if name.startswith(("tests/", "bench/", "docs/", "ops/")))

    venv = root / "venv"
    for command in (
        ["uv", "venv", "--quiet", "--python", sys.executable, str(venv)],
        ["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", str(venv / "bin" / "python"), str(wheel)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        assert 0 == done.returncode, done.stderr
    return venv / "bin"


@pytest.fixture
def operator_env(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing of the checkout or the test's settings in it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("QERBEROS_") and name not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    return env | {
        "QERBEROS_HOME": str(tmp_path / "home"),
        "QERBEROS_LOG_DIR": str(tmp_path / "logs"),
        "QERBEROS_LOG_LEVEL": "WARNING",
        "QERBEROS_LIVE_DETECTION": "embedded",
        "QERBEROS_METRICS_TOKEN": METRICS_TOKEN,
    }


def _run(bin_dir: Path, env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "qerberos"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_installed_wheel_runs_everything_from_anywhere(
    installed: Path, operator_env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = operator_env
    initialised = _run(installed, env, elsewhere, "init")
    assert 0 == initialised.returncode, initialised.stderr

    shown = json.loads(_run(installed, env, elsewhere, "config").stdout)
    site_packages = installed.parent / "lib"
    assert all(Path(path).is_relative_to(site_packages) for path in shown["config_files"].values()), shown

    scheduled = _run(installed, env, elsewhere, "report", "schedule", "--once")
    assert 0 == scheduled.returncode, scheduled.stderr

    detector_port = free_port()
    detect = Service("detect", [str(installed / "qerberos"), "detect"], env | {
        "QERBEROS_HOST": "127.0.0.1", "QERBEROS_DETECTOR_METRICS_PORT": str(detector_port),
    }, tmp_path / "out", cwd=elsewhere)  # fmt: skip
    detect.start()
    try:
        detect.wait_http(f"http://127.0.0.1:{detector_port}/metrics", timeout=STARTUP_SECONDS)
    finally:
        stopped = detect.stop(timeout=STARTUP_SECONDS)  # a loaded machine: stopping the detector takes a while
    assert 0 == stopped, detect.tail()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_env = env | {"QERBEROS_HOST": "127.0.0.1", "QERBEROS_PORT": str(port)}
    with running(
        Service("serve", [str(installed / "qerberos"), "serve"], serve_env, tmp_path / "out", cwd=elsewhere)
    ) as api:
        api.wait_http(f"{base}/health/live", timeout=STARTUP_SECONDS)
        token = (tmp_path / "home" / "admin.token").read_text().strip()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            assert 201 == client.post("/audit/batch", json=[event_body(n) for n in range(9)]).status_code
            risk = client.post("/risk-score", json={"identity": "did:squid:user1", "operation": "payment"})
            assert 200 == risk.status_code, risk.text
            metrics = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
            assert "qerberos_detector_model_loaded" in metrics  # live detection runs embedded
            query = {"type": "soc2", "startDate": "2026-01-01", "endDate": "2026-01-02"}
            accepted = client.get("/compliance/report", params=query)
            assert 202 == accepted.status_code, accepted.text
            deadline = time.monotonic() + 300
            while (job := client.get(accepted.headers["Location"]).json()["data"])["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(1)
            assert "done" == job["status"], job
            report = client.get("/compliance/report", params=query)
            assert (200, "passed") == (report.status_code, report.json()["data"]["summary"]["integrity"]), report.text
