"""The import rules of docs/ARCHITECTURE.md (``[tool.importlinter]`` in pyproject.toml) hold: no layer imports
one above it, analytics reaches no database or HTTP library, api no SQL library, the verifier nothing of ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert 0 == result.returncode, result.stdout[-4000:]
