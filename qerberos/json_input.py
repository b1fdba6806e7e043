"""Untrusted JSON, read strictly: I-JSON (RFC 7493), nesting bounded, and only text every backend stores.

Every JSON body qerberos accepts is read by :func:`read_json`: the audit routes and ``qerberos ingest``
(``models.wire_events``), ``POST /risk-score``, and the bodies Litestar decodes for the other routes
(``api.json_body``). So one rule holds everywhere, and each breach is a ``ValidationError`` (400), never an
exception that reaches the client as a 500:

- UTF-8 only (RFC 8259 section 8.1; the json module would also guess UTF-16 and UTF-32);
- no member name twice in one object (RFC 7493 section 2.3): a parser keeps the last one silently, and an
  audit record must mean what its sender wrote, not what one parser chose;
- no ``NaN`` or ``Infinity``, no number beyond binary64 (RFC 7493 section 2.2), no integer of more than
  4,300 digits (Python's own bound on converting text to ``int``);
- at most ``MAX_DEPTH`` levels of nesting: a document nested a thousand levels deep exhausts the parser's
  recursion, and nothing qerberos accepts nests half as deep;
- no lone surrogate (RFC 7493 section 2.1) and no NUL character in any string or member name: UTF-8 cannot
  encode the one and PostgreSQL's ``text`` refuses the other, which SQLite would store. Both can only come
  from ``\\u`` escapes (raw, they are not UTF-8 or not JSON), so a text without escapes is not searched.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from qerberos.errors import ValidationError

MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _DuplicateNameError(ValueError):
    pass


def read_json(raw: bytes | bytearray | memoryview | str) -> Any:
    """The JSON value of ``raw``; a ``ValidationError`` naming what is wrong when it is not strict JSON."""
    try:
        if isinstance(raw, str):
            raw.encode()  # a lone surrogate in the text itself, as a caller in Python could pass
            text = raw
        else:
            text = bytes(raw).decode()
        value = json.loads(
            text, object_pairs_hook=_unique_names, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except RecursionError as exc:
        raise _too_deep() from exc
    except _DuplicateNameError as exc:
        raise ValidationError("duplicate member name in a JSON object", details={"body": str(exc)}) from exc
    except UnicodeError as exc:
        raise ValidationError("the body is not UTF-8 text", details={"body": str(exc)}) from exc
    except ValueError as exc:  # JSONDecodeError, a non-finite number, an integer of more than 4,300 digits
        raise ValidationError("malformed JSON", details={"body": str(exc)}) from exc
    # a document cannot nest deeper than it has brackets: one event has a handful, and is not walked
    if (
        isinstance(value, dict | list)
        and text.count("[") + text.count("{") > MAX_DEPTH
        and _deeper_than(value, MAX_DEPTH)
    ):
        raise _too_deep()
    if "\\u" in text:
        problems = unstorable_text(value)
        if problems:
            raise ValidationError("text that cannot be stored", details=problems)
    return value


def unstorable_text(value: Any, path: str = "") -> dict[str, str]:
    """Where ``value`` (text, or decoded JSON) holds a NUL character or a lone surrogate: ``{path: reason}``.

    Paths are dotted (``details.note``, ``3.ref``); a member name is reported under its own path.
    """
    problems: dict[str, str] = {}
    _collect_unstorable(value, path, problems)
    return problems


def _collect_unstorable(value: Any, path: str, problems: dict[str, str]) -> None:
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        if found is not None:
            problems[path or "$"] = "holds a NUL character" if found.group() == "\x00" else "holds a lone surrogate"
        return
    if isinstance(value, dict):
        for name, child in value.items():
            child_path = f"{path}.{name}" if path else str(name)
            _collect_unstorable(name, child_path, problems)
            _collect_unstorable(child, child_path, problems)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _collect_unstorable(child, f"{path}.{index}" if path else str(index), problems)


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateNameError(f"the member {name!r} appears more than once in one object")
            seen.add(name)
    return members


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is beyond binary64")
    return number


def _deeper_than(value: dict[str, Any] | list[Any], levels: int) -> bool:
    """Whether containers nest more than ``levels`` deep in ``value``; stops descending at the bound."""
    if levels <= 0:
        return True
    for child in value.values() if isinstance(value, dict) else value:
        if isinstance(child, dict | list) and _deeper_than(child, levels - 1):
            return True
    return False


def _too_deep() -> ValidationError:
    return ValidationError("JSON nests too deeply", details={"body": f"at most {MAX_DEPTH} levels of nesting"})
