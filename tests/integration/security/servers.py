"""The dev sQuid and Qonsent servers as real processes on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"


@contextlib.contextmanager
def dev_server(kind: str, fixture: Path | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``(base URL, process)`` of ``python -m api.dev.<kind>_server``; stopped afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        f"api.dev.{kind}_server",
        "--port",
        str(port),
        "--fixture",
        str(fixture or FIXTURES / f"{kind}.json"),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url, process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a machine loaded by parallel test runs imports slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dev server exited: {process.stderr.read().decode() if process.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"dev server at {url} did not start")
