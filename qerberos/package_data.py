"""The files qerberos ships inside its package and reads at run time, found through ``importlib.resources``.

The default configuration (``config/*.toml`` in the checkout, the package ``qerberos.config`` once installed)
and the notebooks (``notebooks/``, ``qerberos.notebooks``) are package data, so a wheel installed anywhere
(the image, a virtual environment outside the checkout) finds them whatever the working directory.
``QERBEROS_CONFIG_DIR`` overrides the configuration file by file: a file of that name there is in force,
any other comes from the package; ``qerberos config`` shows which file each one is.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from qerberos.errors import ConfigurationError
from qerberos.settings import Settings, get_settings

__all__ = ["CONFIG_FILES", "config_file", "config_files_in_force", "notebook"]

# The configuration files qerberos reads: detection rules, detector parameters, risk weights, report schedule,
# the event taxonomy.
CONFIG_FILES = ("rules.toml", "detectors.toml", "risk.toml", "reports.toml", "taxonomy.toml")


def _packaged(package: str, name: str) -> Path:
    """A file of one of our packages, as a path on disk (qerberos is always installed unzipped)."""
    path = Path(str(importlib.resources.files(package) / name))
    if not path.is_file():
        raise ConfigurationError(f"{name} is missing from the installed package {package}: reinstall qerberos")
    return path


def config_file(name: str, settings: Settings | None = None) -> Path:
    """The configuration file ``name`` in force: ``QERBEROS_CONFIG_DIR/name`` when it exists, else the default."""
    if name not in CONFIG_FILES:
        raise ValueError(f"{name!r} is not one of the configuration files {CONFIG_FILES}")
    config_dir = (settings or get_settings()).config_dir
    if config_dir is not None and (config_dir / name).is_file():
        return config_dir / name
    return _packaged("qerberos.config", name)


def config_files_in_force(settings: Settings) -> dict[str, str]:
    """Each configuration file and the path it is read from, for ``qerberos config``."""
    return {name: str(config_file(name, settings)) for name in CONFIG_FILES}


def notebook(name: str) -> Path:
    """A notebook that ships with qerberos (``compliance_report.ipynb``, ``detector_tuning.ipynb``)."""
    return _packaged("qerberos.notebooks", name)
