"""A separate appending process for the concurrency and durability tests.

``python -m tests.integration.ledger.appender WORKER COUNT BATCH`` appends COUNT events in batches of
BATCH to the ledger named by the QERBEROS_* environment, printing ``<seq> <id>`` for every acknowledged
event as soon as ``append`` returns.
"""

from __future__ import annotations

import sys

from models.ledger import Ledger
from qerberos.settings import load_settings
from tests.integration.ledger.helpers import event


def main(worker: int, count: int, batch: int) -> None:
    ledger = Ledger.from_settings(load_settings())
    for start in range(0, count, batch):
        events = [event(n, actor=f"did:squid:worker{worker}") for n in range(start, min(start + batch, count))]
        for result in ledger.append(events):
            sys.stdout.write(f"{result.record.seq} {result.record.id}\n")
        sys.stdout.flush()
    ledger.close()


if __name__ == "__main__":
    main(*(int(argument) for argument in sys.argv[1:4]))
