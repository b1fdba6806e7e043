"""The column-wise template encoding is ``canonical_record`` for every plain row, and only those are plain."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from models.canonical import canonical_record
from models.canonical_columns import plain_mask, template_records

_MAX_EPOCH_MS = 253402300799999
_COLUMNS = (
    "seq", "id", "type", "ref", "actor_squid_id", "actor_sub_id", "actor_dao_id", "layer", "verdict",
    "details_commitment", "cid", "occurred_at_ms", "received_at_ms", "source",
)  # fmt: skip


def _row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "seq": 7, "id": "0b0e9a4e-5d1c-4f8e-9a55-1c2d3e4f5a6b", "type": "access", "ref": "file:doc-7",
        "actor_squid_id": "did:squid:alice", "actor_sub_id": "work", "actor_dao_id": None, "layer": "qdrive",
        "verdict": "ALLOW", "details_commitment": "sha256:" + "ab" * 32, "cid": None,
        "occurred_at_ms": 1767225600123, "received_at_ms": 1767225601000, "source": "test",
    }  # fmt: skip
    row.update(changes)
    return row


def _table(rows: list[dict[str, object]]) -> pa.Table:
    types = {"seq": pa.int64(), "occurred_at_ms": pa.int64(), "received_at_ms": pa.int64()}
    return pa.table({name: pa.array([row[name] for row in rows], types.get(name, pa.string())) for name in _COLUMNS})


def _canonical(row: dict[str, object]) -> bytes:
    return canonical_record(
        seq=row["seq"], event_id=row["id"], type=row["type"], ref=row["ref"], squid_id=row["actor_squid_id"],
        sub_id=row["actor_sub_id"], dao_id=row["actor_dao_id"], layer=row["layer"], verdict=row["verdict"],
        details_commitment=row["details_commitment"], cid=row["cid"], occurred_at_ms=row["occurred_at_ms"],
        received_at_ms=row["received_at_ms"], source=row["source"],
    )  # type: ignore[arg-type] # fmt: skip


_plain_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters='"\\', min_codepoint=0x20))


@settings(deadline=None)  # the first example pays for loading Arrow's compute kernels
@given(
    ref=_plain_text,
    sub=st.none() | _plain_text,
    cid=st.none() | _plain_text,
    occurred=st.integers(0, _MAX_EPOCH_MS),
    seq=st.integers(0, 2**53 - 1),
)
def test_the_template_of_a_plain_row_is_its_canonical_record(
    ref: str, sub: str | None, cid: str | None, occurred: int, seq: int
) -> None:
    row = _row(ref=ref, actor_sub_id=sub, cid=cid, occurred_at_ms=occurred, seq=seq)
    table = _table([row])
    assert ([True], [_canonical(row)]) == (
        plain_mask(table).to_pylist(),
        [text.encode() for text in template_records(table).to_pylist()],
    )


def test_rows_a_json_escape_or_an_odd_timestamp_would_change_are_not_plain() -> None:
    rows = [
        _row(),
        _row(ref='file:"quoted"'),
        _row(source="back\\slash"),
        _row(actor_dao_id="tab\there"),
        _row(cid="new\nline"),
        _row(ref="café ∑ 𝄞"),
        _row(occurred_at_ms=-1),
        _row(received_at_ms=_MAX_EPOCH_MS + 1),
        _row(id=None),
    ]
    assert [True, False, False, False, False, True, False, False, False] == plain_mask(_table(rows)).to_pylist()


def test_a_column_of_another_type_is_refused() -> None:
    table = _table([_row()]).set_column(2, "type", pa.array([b"access"], pa.binary()))
    try:
        template_records(table)
    except TypeError as refused:
        assert "type" in str(refused)
    else:
        raise AssertionError("a binary column was taken for text")
