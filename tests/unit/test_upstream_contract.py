"""tests/fixtures/upstream-contract.json still says what the upstream contract says.

The only test that reads ``../shared/``: the API tests rely on the fixture alone, so a clone of the
repository with nothing beside it runs them all. Where the upstream directory is present beside the
checkout, the fixture must equal what ``tests/fixtures/upstream_contract.py`` extracts from it now.
"""

from __future__ import annotations

import pytest

from tests.fixtures.upstream_contract import DEFAULT_UPSTREAM, FIXTURE, extract, render


def test_the_committed_contract_fixture_agrees_with_the_upstream_beside_the_checkout() -> None:
    if not (DEFAULT_UPSTREAM / "openapi.yaml").is_file():
        pytest.skip(
            f"no upstream contract at {DEFAULT_UPSTREAM} (../shared/upstream beside the checkout): the fixture "
            "cannot be compared; every other test uses the fixture and runs"
        )
    assert render(extract(DEFAULT_UPSTREAM)) == FIXTURE.read_text(encoding="utf-8"), (
        "the upstream contract changed: run `.venv/bin/python tests/fixtures/upstream_contract.py`, review the "
        "diff of tests/fixtures/upstream-contract.json, and adapt qerberos where the contract moved"
    )
