"""``python -m bench evaluation``: detection and risk on a simulator seed never used for tuning.

A detector is trained on simulated traffic of ``--train-seed`` (1, the seed tests tune on) into a temporary
MLflow store and made champion; traffic of ``--seed`` (held out) is replayed through
``qerberos detection evaluate``'s path (``pipelines.detection_evaluation``). Prints the report's table and
its JSON (per attacker: alerted, delay, technique named, final risk level; benign identities alerted; alerts
per attacker and per benign identity; ROC-AUC of identity risk).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from analytics.detection_report import table
from analytics.detectors import load_config
from analytics.labels import label_windows
from analytics.simulation import SimulationConfig, simulate
from analytics.window_features import compute_features
from pipelines.detection_evaluation import evaluate_detection
from pipelines.model_registry import set_champion, use_tracking_uri


def _champion(root: Path, seed: int, identities: int, days: int) -> str:
    from pipelines.train import train

    uri = f"sqlite:///{root / 'mlflow.db'}"
    use_tracking_uri(uri)
    result = simulate(SimulationConfig(identities=identities, days=days, seed=seed))
    features = label_windows(compute_features(result.events.lazy(), "1h").collect(), result.labels)
    trained = train(features, config=load_config(), tracking_uri=uri, gate=False)
    set_champion(uri, trained.version, tags={"promoted_by": "bench"})
    return uri


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench evaluation", description=__doc__)
    parser.add_argument("--seed", type=int, default=11, help="held-out simulator seed (evaluated)")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--step", default="1m", help="event time between detection rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as scratch:
        root = Path(scratch)
        uri = _champion(root / "mlflow", args.train_seed, args.identities, args.days)
        held_out = simulate(SimulationConfig(identities=args.identities, days=args.days, seed=args.seed))
        result = evaluate_detection(
            held_out.events, held_out.labels, scratch=root / "home", tracking_uri=uri, step=args.step
        )
    print(table(result))
    print(json.dumps({"bench": "detection.evaluation", "seed": args.seed, **result.to_json()["summary"]}))
