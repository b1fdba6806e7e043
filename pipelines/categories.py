"""Keeps the stored categories (``models.categories``) equal to what the taxonomy says of the ledger's events.

``catch_up`` classifies the events not yet stored, in ``seq`` order and batches, with ``analytics.taxonomy``; when
the taxonomy's digest differs from the stored one (the file changed), it first forgets every stored category and
classifies history again: that is how a change of taxonomy is applied to history (``qerberos taxonomy apply``,
and live detection on each poll). Rules, features and risk never wait for it: they classify what they read with
the same pure function, so the store is for SQL readers (``/metrics`` per class, audits by category).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine

from analytics.taxonomy import Taxonomy
from models.categories import CategoryStore
from models.reader import LedgerReader

__all__ = ["catch_up"]

logger = logging.getLogger(__name__)


def catch_up(
    engine: Engine,
    taxonomy: Taxonomy,
    *,
    batch_rows: int = 50_000,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Classify and store the events the store lacks (all of them after a change of taxonomy), at most
    ``limit``; returns how many were stored. ``progress`` is told after each batch how many were stored, of how
    many there were to store."""
    store = CategoryStore(engine)  # its tables are made with the schema (models.schema)
    state = store.state()
    if state.digest != taxonomy.digest:
        logger.info("taxonomy %s replaces %s: classifying history again", taxonomy.digest, state.digest)
        store.reset(taxonomy.digest)
        state = store.state()
    reader = LedgerReader(engine)
    pending = reader.size() - state.classified_upto if progress is not None else 0
    stored = 0
    while limit is None or stored < limit:
        wanted = batch_rows if limit is None else min(batch_rows, limit - stored)
        rows = reader.tail(state.classified_upto - 1, wanted)
        if not rows:
            break
        categories = []
        for seq, _squid, type_, _ref, layer, verdict, _at, _dao, details in rows:
            category = taxonomy.classify(type_, layer, verdict, details)
            categories.append((seq, category.class_uid, category.activity_id, category.status_id))
        upto = rows[-1][0] + 1
        if not store.append(state, categories, upto):
            logger.info("another process stored these categories; stopping")
            break
        stored += len(categories)
        if progress is not None:
            progress(stored, max(pending, stored))
        state = store.state()
    return stored
