"""C2SP tlog-tiles: the paths of tiles and entry bundles.

A tile's index ``N`` is written as zero-padded 3-digit path elements, all but the last prefixed with
``x`` (1234067 is ``x001/x234/067``), so that a file system can hold millions of them without a file
and a directory of the same name. The checkpoint history (``models/checkpoint_history.py``) names its
files the same way, by tree size.
"""

from __future__ import annotations

from collections.abc import Sequence

from qerberos.errors import ValidationError

__all__ = ["index_path", "parse_index_path"]

_DIGITS = 3


def index_path(index: int) -> str:
    """``index`` as tlog-tiles path elements: ``x001/x234/067`` for 1234067, ``000`` for 0."""
    if index < 0:
        raise ValidationError(f"a tile index is not negative: got {index}")
    text = str(index)
    text = text.zfill(-(-len(text) // _DIGITS) * _DIGITS)
    groups = [text[start : start + _DIGITS] for start in range(0, len(text), _DIGITS)]
    return "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])


def parse_index_path(elements: Sequence[str]) -> int:
    """The index that ``index_path`` writes as ``elements``; ``ValidationError`` for any other spelling."""
    if not elements:
        raise ValidationError("a tile index has at least one path element")
    *leading, last = elements
    if not all(len(item) == _DIGITS + 1 and item[0] == "x" and item[1:].isdigit() for item in leading):
        raise ValidationError(f"not a tile index: {'/'.join(elements)!r}")
    if not (len(last) == _DIGITS and last.isdigit()) or not last.isascii():
        raise ValidationError(f"not a tile index: {'/'.join(elements)!r}")
    index = int("".join([*(item[1:] for item in leading), last]))
    if index_path(index) != "/".join(elements):  # no superfluous leading groups such as x000/001
        raise ValidationError(f"not a tile index: {'/'.join(elements)!r}")
    return index
