"""The evidence index: every table the report shows is also written whole as a CSV file under
``evidence/`` of the report's directory, and listed (file, caption, rows, SHA-256) at the end of the report.

The run (``pipelines.reports``) hashes these files with the others into the manifest whose hash the ledger
records, so a table cannot be changed after the report without it showing.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl

from analytics.compliance import render

EVIDENCE_DIR = "evidence"


class EvidenceIndex:
    """Shows tables (``render.table``) and writes each one to ``<output_dir>/evidence/NN-name.csv``."""

    def __init__(self, output_dir: str | Path) -> None:
        self._directory = Path(output_dir) / EVIDENCE_DIR
        self._directory.mkdir(parents=True, exist_ok=True)
        self._entries: list[tuple[str, str, int, str]] = []

    def table(self, frame: pl.DataFrame, caption: str, *, max_rows: int = 25) -> str:
        self._write(frame, caption)
        return render.table(frame, max_rows=max_rows, caption=caption)

    def key_values(self, pairs: dict[str, object], caption: str) -> str:
        frame = pl.DataFrame({"metric": list(pairs), "value": [_text(v) for v in pairs.values()]})
        self._write(frame, caption)
        return render.key_values(pairs, caption=caption)

    def listing(self) -> pl.DataFrame:
        """``file``, ``caption``, ``rows``, ``sha256`` of every table written so far."""
        return pl.DataFrame(self._entries, schema=["file", "caption", "rows", "sha256"], orient="row")

    def _write(self, frame: pl.DataFrame, caption: str) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", caption.lower()).strip("-")[:60] or "table"
        name = f"{len(self._entries) + 1:03d}-{slug}.csv"
        path = self._directory / name
        _flat(frame).write_csv(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self._entries.append((f"{EVIDENCE_DIR}/{name}", caption, frame.height, digest))


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV holds no nested values: lists and structs as their JSON-ish text."""
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(pl.col(name).map_elements(str, return_dtype=pl.String) for name in nested)


def _text(value: object) -> str:
    return "" if value is None else str(value)
