"""Property: whatever bytes reach a write route (``POST /audit``, ``POST /audit/batch`` as JSON and as NDJSON,
``qerberos ingest``), the answer is 2xx or 4xx, never 5xx, and the ledger verifies afterwards; on SQLite and
PostgreSQL, through the real app and the real CLI.

The bodies are arbitrary bytes and near-valid events: a valid event with one field replaced by any JSON value,
an extra member, a member given twice, text with NUL and lone surrogates (as ``\\u`` escapes, the only way to
send them), numbers past every bound, nesting past every bound. Bounded (``MAX_EXAMPLES``, derandomized) so
that each backend takes seconds.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from typer.testing import CliRunner

from cli import app as cli
from models.ledger import Ledger
from models.verification import verify_ledger
from qerberos.settings import Settings
from tests.integration.api.conftest import event_body

MAX_EXAMPLES = 120
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}
runner = CliRunner()

_texts = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\ud800", "\udfff", "\\", '"', "\u0663", "\ufeff"]),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    ),
    max_size=12,
)
_number_texts = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**53, max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["1e400", "-1e999", "NaN", "Infinity", "0.0000001e-400", "-0", "01", "1.", ".5"]),
    st.integers(4_000, 6_000).map(lambda digits: "9" * digits),  # past int()'s 4,300 digits
)
_scalars = st.one_of(st.none(), st.booleans(), _texts).map(json.dumps) | _number_texts
_json_texts = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(["a", "type", "details", "x"]) | _texts, inner), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in pairs) + "}"
        ),
    ),
    max_leaves=12,
)
_nested = st.sampled_from([31, 33, 200, 1_000, 20_000]).map(lambda levels: "[" * levels + "]" * levels)


@st.composite
def _near_valid_events(draw: st.DrawFn) -> str:
    """A valid event's JSON text, then (mostly) one change that may or may not keep it valid."""
    event = event_body(draw(st.integers(0, 1000)))
    members = [(name, json.dumps(value)) for name, value in event.items()]
    change = draw(st.sampled_from(["none", "replace", "add", "twice", "details", "nested"]))
    if change == "replace":
        index = draw(st.integers(0, len(members) - 1))
        members[index] = (members[index][0], draw(_json_texts))
    elif change == "add":
        members.append((draw(_texts), draw(_json_texts)))
    elif change == "twice":
        members.append(members[draw(st.integers(0, len(members) - 1))])
    elif change == "details":
        pairs = f'"k":{draw(_json_texts)},{json.dumps(draw(_texts))}:{draw(_json_texts)}'
        members.append(("details", "{" + pairs + "}"))
        members = [member for member in members if member[0] != "details"] + members[-1:]
    elif change == "nested":
        members.append(("details", '{"x":' + draw(_nested) + "}"))
        members = [member for member in members if member[0] != "details"] + members[-1:]
    return "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in members) + "}"


PAYLOADS = st.one_of(
    st.binary(max_size=200),
    _json_texts.map(str.encode),
    _nested.map(str.encode),
    _near_valid_events().map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(_near_valid_events(), min_size=1, max_size=3).map(
        lambda items: "\n".join(items).encode("utf-8", "surrogatepass")
    ),
)


def test_any_bytes_on_the_write_routes_get_2xx_or_4xx_and_the_ledger_verifies(
    backend_client: TestClient[Any], backend_api_settings: Settings
) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payload=PAYLOADS)
    def send(payload: bytes) -> None:
        answers = {
            "POST /audit": backend_client.post("/audit", content=payload, headers=JSON),
            "POST /audit/batch": backend_client.post("/audit/batch", content=payload, headers=JSON),
            "POST /audit/batch [..]": backend_client.post("/audit/batch", content=b"[" + payload + b"]", headers=JSON),
            "POST /audit/batch NDJSON": backend_client.post("/audit/batch", content=payload, headers=NDJSON),
        }
        for route, answer in answers.items():
            assert 200 <= answer.status_code < 500, (route, payload[:300], answer.text[:500])
        ingest = runner.invoke(cli, ["ingest", "-"], input=payload)
        uncaught = None if isinstance(ingest.exception, SystemExit | None) else ingest.exception
        assert (uncaught, ingest.exit_code in (0, 1, 2)) == (None, True), (payload[:300], ingest.output[-500:])

    send()

    with Ledger.from_settings(backend_api_settings) as ledger:
        report = verify_ledger(ledger)
        assert report.intact, report
        assert ledger.size() > 0  # some examples were valid: the property was not checked on refusals alone
