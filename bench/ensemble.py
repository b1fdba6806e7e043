"""``python -m bench ensemble``: each detector of ``qerberos models evaluate`` against plain PyOD, and the ensemble.

On an ADBench table (``X``, ``y`` in an ``.npz``; default ``bench/data/adbench_http.npz``, ADBench's
``Classical/16_http.npz``), both sides use the same seeded half to fit (labels unseen) and the other half to
evaluate (``pipelines.evaluate.split_halves``). Plain PyOD: the class with its default parameters on the raw
features. qerberos: ``pipelines.evaluate.fit_here`` (what ``qerberos models evaluate --detector NAME`` fits),
which chooses parameters and preprocessing on a validated share of the fitting half. The ensemble must match
or beat its best member. ``--rows`` samples the table (seeded) to bound the time. Prints one JSON line a row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest
from pyod.models.knn import KNN
from pyod.models.lof import LOF
from sklearn.metrics import average_precision_score, roc_auc_score

from analytics.detectors import load_config
from pipelines.evaluate import fit_here, split_halves, table_features

_DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "adbench_http.npz"
_PLAIN_PYOD = {"iforest": IForest, "ecod": ECOD, "copod": COPOD, "hbos": HBOS, "knn": KNN, "lof": LOF}


def _table(path: Path, rows: int | None, seed: int) -> pl.DataFrame:
    data = np.load(path, allow_pickle=False)
    X, y = data["X"].astype(np.float64), data["y"].astype(np.int8)
    if rows is not None and rows < len(y):
        keep = np.sort(np.random.default_rng(seed).choice(len(y), rows, replace=False))
        X, y = X[keep], y[keep]
    return pl.DataFrame({**{f"x{i}": X[:, i] for i in range(X.shape[1])}, "label": y})


def _quality(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {
        "pr_auc": round(float(average_precision_score(labels, scores)), 4),
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ensemble", description=__doc__)
    parser.add_argument("--data", type=Path, default=_DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=None, help="seeded sample of the table (default: all)")
    parser.add_argument("--detectors", default="iforest,ecod,copod,hbos,knn", help="comma-separated; lof is slow")
    args = parser.parse_args(argv)
    config = load_config()
    frame = _table(args.data, args.rows, config.seed)
    config = table_features(frame, config, "label").with_members(tuple(args.detectors.split(",")))
    fitting, evaluated = split_halves(frame, config.seed)
    X_fit, X_eval = fitting.drop("label").to_numpy(), evaluated.drop("label").to_numpy()
    labels = evaluated["label"].to_numpy()
    best_member = 0.0
    for name in config.members:
        started = time.perf_counter()
        plain = _PLAIN_PYOD[name]().fit(X_fit).decision_function(X_eval)
        pipeline = fit_here(fitting, "label", config, name)
        ours = pipeline.score_frame(evaluated)
        line = {
            "detector": name,
            "plain_pyod": _quality(labels, plain),
            "qerberos": _quality(labels, ours),
            "chosen": pipeline.flat_params()["ensemble.members"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        best_member = max(best_member, line["qerberos"]["pr_auc"])
        print(json.dumps(line), flush=True)
    pipeline = fit_here(fitting, "label", config, None)
    ensemble = _quality(labels, pipeline.score_frame(evaluated))
    print(
        json.dumps(
            {
                "detector": "ensemble",
                "qerberos": ensemble,
                "chosen": pipeline.flat_params()["ensemble.members"],
                "weights": pipeline.flat_params().get("ensemble.weights"),
                "best_member_pr_auc": best_member,
                "rows": frame.height,
                "data": args.data.name,
            }
        ),
        flush=True,
    )
