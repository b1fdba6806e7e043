"""What an API process imports before it does anything: a replica's resident memory is mostly its imports
(README, "Footprint"), so the heavy libraries it needs only on some paths stay out of ``import api.app``, and
embedded detection loads the detector stack with its first champion, not to ask the registry whether there is one.
Each probe runs in a fresh interpreter, so that what other tests imported does not hide a regression."""

from __future__ import annotations

import subprocess
import sys

# Arrow, ADBC and pandas: the verifier's column reader (models.ledger_columns) when a verification runs;
# redis-py (with OpenTelemetry's SDK): only where QERBEROS_REDIS_URL is set; MLflow and the detector stack:
# only where detection runs or POST /anomaly/detect loads a model.
REPLICA_LAZY = ("pyarrow", "pandas", "adbc_driver_manager", "models.ledger_columns", "redis", "opentelemetry", "mlflow",
                "sklearn", "scipy", "pyod", "numba", "matplotlib", "great_expectations", "papermill")  # fmt: skip
DETECTOR_STACK = ("pyod", "numba", "sklearn", "matplotlib", "analytics.detectors", "analytics.detector_pipeline")


def _loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    probe = f"import sys\n{statement}\nprint(','.join(name for name in {names!r} if name in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, check=True)
    last_line = done.stdout.rstrip("\n").rpartition("\n")[2]  # an import may print before it
    return [name for name in last_line.split(",") if name]


def test_importing_the_app_loads_none_of_the_libraries_a_replica_needs_only_on_some_paths() -> None:
    assert [] == _loaded_after("import api.app", REPLICA_LAZY)


def test_the_model_registry_loads_the_detector_stack_only_with_a_detector() -> None:
    assert [] == _loaded_after("import api.app, pipelines.model_registry", DETECTOR_STACK)
