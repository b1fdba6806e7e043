"""The HTML report shows what the notebook computed, without its code or the libraries' stderr chatter, under
the report's title (which Chromium makes the PDF's)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from pipelines.reports import OUTPUTS, _render_html


def test_html_keeps_results_and_drops_code_and_stderr(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("secret_code_marker = 1")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="TqdmWarning: IProgress not found"),
        nbformat.v4.new_output("stream", name="stdout", text="7,880 records re-derived"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / OUTPUTS["ipynb"])
    _render_html(tmp_path, "Acme: SOC 2 compliance report, 2026-01-05 to 2026-01-11")
    html = (tmp_path / OUTPUTS["html"]).read_text(encoding="utf-8")
    assert "<title>Acme: SOC 2 compliance report, 2026-01-05 to 2026-01-11</title>" in html
    assert ("7,880 records re-derived" in html, "TqdmWarning" in html, "secret_code_marker" in html) == (
        True,
        False,
        False,
    )
