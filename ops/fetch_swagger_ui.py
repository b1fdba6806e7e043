"""Refresh the Swagger UI files served at ``/schema`` (``api/openapi/swagger_ui/``) from the npm registry.

Run from the repository root: ``.venv/bin/python ops/fetch_swagger_ui.py [VERSION]``. It runs ``npm pack
swagger-ui-dist@VERSION`` in a temporary directory, copies the files the page loads with their licence texts, and
prints each file's SHA-256 to record in ``api/openapi/swagger_ui/README.md``. The service never downloads them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_VERSION = "5.35.0"
TARGET = Path(__file__).resolve().parents[1] / "api" / "openapi" / "swagger_ui"
FILES = (
    "LICENSE",
    "NOTICE",
    "swagger-ui-bundle.js",
    "swagger-ui-bundle.js.LICENSE.txt",
    "swagger-ui-standalone-preset.js",
    "swagger-ui-standalone-preset.js.LICENSE.txt",
    "swagger-ui.css",
    "favicon-32x32.png",
)


def main(argv: list[str]) -> int:
    version = argv[0] if argv else DEFAULT_VERSION
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["npm", "pack", f"swagger-ui-dist@{version}"], cwd=work, check=True, capture_output=True)
        with tarfile.open(next(Path(work).glob("swagger-ui-dist-*.tgz"))) as archive:
            archive.extractall(work, filter="data")
        for name in FILES:
            shutil.copyfile(Path(work) / "package" / name, TARGET / name)
            print(f"{hashlib.sha256((TARGET / name).read_bytes()).hexdigest()}  {name}")
    print(f"swagger-ui-dist {version} copied to {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
