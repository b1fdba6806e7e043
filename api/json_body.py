"""The bodies Litestar decodes for handlers (``data`` parameters) are read as strict JSON, as the audit routes'.

Litestar reads a ``data`` body with ``Request.json()`` (msgspec) before converting it to the handler's type,
so a body nested a thousand levels deep exhausted msgspec's recursion (``RecursionError``: a 500) and a member
name given twice kept its last value. Reading it with ``qerberos.json_input.read_json`` instead puts every
JSON body qerberos accepts under the same rules, each breach a 400.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from qerberos.json_input import read_json


class StrictJSONRequest(Request[Any, Any, Any]):
    """The app's request class (``Litestar(request_class=...)``)."""

    async def json(self) -> Any:
        return read_json(await self.body() or b"null")
