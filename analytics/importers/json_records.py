"""The JSON records of an input: one record per line (JSON lines), or one document holding them (a
CloudTrail log file's ``{"Records": [...]}``, a Graph API page's ``{"value": [...]}``, an array), read strictly
(``qerberos.json_input``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from analytics.importers.fields import ImportFailure
from qerberos.errors import ValidationError
from qerberos.json_input import read_json

__all__ = ["json_records"]

_CONTAINERS = ("Records", "value", "records", "events")


def json_records(lines: Iterable[bytes]) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    """``(line, record, text)`` for every record: in JSON lines each line is a record (``text`` the line) or a
    document of records (``text`` None); a document over several lines (pretty-printed) is read whole, its records
    all numbered by its first line."""
    numbered = enumerate(lines, start=1)
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            value = read_json(line)
        except ValidationError:
            rest = b"".join(line for _, line in numbered)
            yield from _expand(number, _parse(number, line + rest), None)
            return
        yield from _expand(number, value, line)
        for number, line in numbered:
            if line.strip():
                yield from _expand(number, _parse(number, line), line)
        return


def _parse(number: int, text: bytes) -> Any:
    try:
        return read_json(text)
    except ValidationError as exc:
        raise ImportFailure(number, f"{exc.message}: {exc.details.get('body', '') if exc.details else ''}") from exc


def _expand(number: int, value: Any, line: bytes | None) -> Iterator[tuple[int, Mapping[str, Any], str | None]]:
    if isinstance(value, Mapping):
        container = next((value[key] for key in _CONTAINERS if isinstance(value.get(key), list)), None)
        if container is None:
            yield number, value, None if line is None else line.decode().strip()
            return
        value = container
    if not isinstance(value, list):
        raise ImportFailure(number, "a record must be a JSON object")
    for item in value:
        if not isinstance(item, Mapping):
            raise ImportFailure(number, "a record must be a JSON object")
        yield number, item, None
