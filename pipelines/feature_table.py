"""The feature table of a ledger or of an event export, as Parquet: what data scientists hand to ``qerberos models
train|evaluate`` (``qerberos features``).

A ledger's database is first copied, ``chunk_rows`` rows at a time (``models.reader.export_parquet``), into a
Parquet file beside the output, so that it is read once however many windows are asked for; the features are
then ``analytics.window_features.features_to_parquet`` of that file.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from analytics.window_features import features_to_parquet
from models.reader import DEFAULT_CHUNK_ROWS, export_parquet, is_database_url


def write_feature_table(
    source: str | Path | pl.LazyFrame,
    out: Path,
    windows: Sequence[str] = ("1h",),
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Path:
    """The features of ``source`` (a database URL, an event Parquet path or an event LazyFrame) for every window,
    written to ``out``."""
    if not (isinstance(source, str) and is_database_url(source)):
        return features_to_parquet(source, out, windows)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".events-", dir=out.parent))
    try:
        events = export_parquet(source, work / "events.parquet", chunk_rows=chunk_rows)
        return features_to_parquet(pl.scan_parquet(events), out, windows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
