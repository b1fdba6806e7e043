"""``qerberos --help`` imports no heavy library: each command imports what it needs when it runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("polars", "pyarrow", "pandas", "numpy", "sqlalchemy", "psycopg", "mlflow", "sklearn", "pyod", "litestar",
         "jsonschema", "httpx", "papermill", "models.ledger", "pipelines")  # fmt: skip

PROBE = f"""
import sys
from cli import app
try:
    app(["--help"])
except SystemExit:
    pass
print("loaded:" + ",".join(name for name in {HEAVY!r} if name in sys.modules))
"""


def test_help_imports_no_heavy_library() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert "loaded:" == done.stdout.strip().splitlines()[-1]
