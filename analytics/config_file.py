"""Read one of the TOML files of ``config/`` (risk, rules, detectors) for the module that checks its keys.

Without an explicit path, the file in force is read: ``QERBEROS_CONFIG_DIR``'s, else the packaged default
(``qerberos.package_data.config_file``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from qerberos.errors import ConfigurationError
from qerberos.package_data import config_file


def config_path(path: Path | str | None, name: str) -> Path:
    """``path`` when given, else the configuration file ``name`` in force."""
    return Path(path) if path is not None else config_file(name)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The parsed file; a missing, unreadable or malformed one is a ``ConfigurationError`` naming it
    (``what``: the kind of configuration, as the message says it: "risk", "rules", "detector")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {what} configuration {path}: {exc}") from exc
