"""The simulated attackers rank above benign identities (ROC-AUC over identities, held-out seed 101).

No alerts here (detection is scored on its own): only the behavioural factors computed from each identity's
events, as ``GET /risk-score/{identity}`` reads them from the ledger, at the end of the simulated period with
a window covering the attack period (attacks start in the last 60 % of the days).

Floor 0.90, justified: seen 0.946 with 400 identities (64 of them attacked). 49 are password-spraying
victims with 1-2 denied sign-ins from a foreign place, which unfamiliar_access separates well; bulk
downloads (habitual place, ALLOW verdicts, 2 of 64) are invisible to these factors by design (volume is the
detectors' job). A floor 0.045 under the seen value leaves room for a simulator change without letting a
scorer that ranks a third of the attackers among benign identities pass.

Since the simulator got harder (issue 17: benign travellers from new countries and addresses, newcomers with
no history, new devices, slow attacks) the same seed measures 0.902 with 87 attacked: barely above the floor,
which stays where it was; the factors, not the floor, are what should move.
"""

from __future__ import annotations

import polars as pl
from sklearn.metrics import roc_auc_score

from analytics.risk import HistoryEvent, RiskConfig, RiskInputs, assess
from analytics.simulation import SimulationConfig, simulate
from analytics.taxonomy import default_taxonomy

AUC_FLOOR = 0.90
DAYS = 10


def test_simulated_attackers_rank_above_benign_identities() -> None:
    result = simulate(SimulationConfig(identities=400, days=DAYS, seed=101))
    events = result.events.sort("seq").with_columns(
        ms=pl.col("occurred_at").dt.epoch("ms"),
        ip=pl.col("details").str.json_path_match("$.ip"),
        country=pl.col("details").str.json_path_match("$.country"),
        device=pl.col("details").str.json_path_match("$.device"),
    )
    as_of = int(events["ms"].max())  # type: ignore[arg-type]
    config = RiskConfig().replace(window_ms=int(DAYS * 0.6 * 86_400_000))
    scores: dict[str, float] = {}
    taxonomy = default_taxonomy()
    for (squid_id,), rows in events.group_by(["squid_id"], maintain_order=True):
        columns = rows.select("ms", "type", "layer", "verdict", "ip", "country", "device").iter_rows()
        history = tuple(
            HistoryEvent(ms, taxonomy.classify(type_, layer, verdict), ip, country, device)
            for ms, type_, layer, verdict, ip, country, device in columns
        )
        scores[str(squid_id)] = assess(
            RiskInputs(identity=str(squid_id), as_of_ms=as_of, history=history), config
        ).score
    attacked = set(result.labels["squid_id"].to_list())
    identities = sorted(scores)
    auc = roc_auc_score([i in attacked for i in identities], [scores[i] for i in identities])
    assert auc >= AUC_FLOOR, f"ROC-AUC {auc:.3f} below {AUC_FLOOR}"
