"""``qerberos mcp``: the tools of ``api.mcp.tools`` served with the official MCP SDK (its low-level ``Server``,
which publishes each tool's input and output schema as written), over stdio or streamable HTTP.

- **Streamable HTTP** (``/mcp``): mounted in the served API app, behind the same authentication and rate-limit
  middleware as every REST route; each tool then asks the app's own permission guard for its route's
  permission (``sQuid``/``Qonsent`` in remote mode, the identity's grants in local mode).
- **stdio**: runs as the local identity ``QERBEROS_MCP_IDENTITY`` (``qerberos identity create``), with its grants.

In both the tools run against a ``Litestar`` app whose lifespan opened the services, so that a tool finds them
where the REST routes do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from litestar import Litestar, asgi
from litestar.types import Receive, Scope, Send
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from api.controllers.health import __version__
from api.mcp.tools import ToolRequest, call_tool, tool_definitions
from api.security.caller import Caller, Credential
from api.security.permissions import LocalPolicy
from qerberos.errors import AuthenticationError, PermissionDeniedError, QerberosError

__all__ = ["MCP_PATH", "build_server", "mount_mcp", "stdio_identity"]

logger = logging.getLogger(__name__)
MCP_PATH = "/mcp"
Identify = Callable[[ServerRequestContext[Any, Any]], tuple[ToolRequest, Callable[[str], Awaitable[None]]]]


def _tools() -> list[types.Tool]:
    return [
        types.Tool(
            name=tool["name"],
            description=tool["description"],
            input_schema=tool["inputSchema"],
            output_schema=tool["outputSchema"],
        )
        for tool in tool_definitions()
    ]


def build_server(identify: Identify) -> Server[Any]:
    """The MCP server; ``identify`` tells, for a request, the caller's ``ToolRequest`` and how to authorise it."""

    async def list_tools(
        _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=_tools())

    async def call(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            request, authorise = identify(ctx)
            result = await call_tool(request, authorise, params.name, params.arguments or {})
        except QerberosError as exc:
            error = {"error": type(exc).__name__, "message": exc.message, "details": exc.details}
            return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(error))], is_error=True)
        text = json.dumps(result, separators=(",", ":"))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=result)

    return Server("qerberos", version=__version__, on_list_tools=list_tools, on_call_tool=call)


# -- streamable HTTP, inside the API app -------------------------------------------------------------------------


def _guard_authoriser(app: Litestar, scope: Scope) -> Callable[[str], Awaitable[None]]:
    """Authorise with the app's own permission guard, as if the route named ``permission`` in its ``opt``."""
    (guard,) = app.guards

    async def authorise(permission: str) -> None:
        handler = _PermissionOnly(permission)
        outcome = guard(_ScopeOnly(scope), handler)  # type: ignore[arg-type]
        if outcome is not None:
            await outcome

    return authorise


@dataclasses.dataclass(frozen=True, slots=True)
class _ScopeOnly:
    """What the permission guard reads of a connection: its scope (the caller the middleware authenticated)."""

    scope: Scope


@dataclasses.dataclass(frozen=True, slots=True)
class _PermissionOnly:
    """What the permission guard reads of a route handler: the permission in its ``opt``."""

    permission: str

    @property
    def opt(self) -> dict[str, str]:
        return {"permission": self.permission}


def mount_mcp(app: Litestar) -> None:
    """Serve MCP at ``/mcp`` in ``app``, behind its authentication; the SDK's session manager runs for as long as
    the app does."""
    sessions: dict[str, StreamableHTTPSessionManager] = {}

    def identify(ctx: ServerRequestContext[Any, Any]) -> tuple[ToolRequest, Callable[[str], Awaitable[None]]]:
        scope: Scope = ctx.request.scope  # type: ignore[union-attr]
        caller, credential = scope.get("user"), scope.get("auth")
        if not isinstance(caller, Caller) or not isinstance(credential, Credential):
            raise AuthenticationError("SQUID_IDENTITY_MISSING", "authentication is required")
        return ToolRequest(app, caller, credential), _guard_authoriser(app, scope)

    @contextlib.asynccontextmanager
    async def running(_app: Litestar) -> AsyncIterator[None]:
        # the API's own middleware already authenticates and limits; the SDK's host check would refuse the
        # API's real host names, so it is left to the deployment (as for every REST route). Stateless, with
        # plain JSON answers: a tool call is one request and one answer, on any worker (no session to pin)
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        manager = StreamableHTTPSessionManager(
            build_server(identify), stateless=True, json_response=True, security_settings=security
        )
        sessions["manager"] = manager
        async with manager.run():
            yield

    @asgi(MCP_PATH, is_mount=True, copy_scope=True, opt={"permission": None})
    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await sessions["manager"].handle_request(scope, receive, send)  # type: ignore[arg-type]

    app.register(mcp_endpoint)
    app._lifespan_managers.append(running)


# -- stdio -------------------------------------------------------------------------------------------------------


def stdio_identity(app: Litestar, name: str) -> Identify:
    """Every request runs as the local identity ``name`` with its grants (refused if unknown or disabled)."""
    from models.identities import list_identities

    ledger = app.state.service.require_ledger()
    found = [identity for identity in list_identities(ledger.engine) if identity.name == name]
    if not found or found[0].disabled:
        raise AuthenticationError("SQUID_IDENTITY_MISSING", f"no enabled local identity named {name!r}")
    identity = found[0]
    caller = Caller(squid_id=identity.squid_id, sub_id=None, dao_id=None, source=f"local:{identity.name}")
    credential = Credential("bearer", identity.permission_set)
    policy = LocalPolicy()

    async def authorise(permission: str) -> None:
        allowed, reason = await policy.allows(caller, credential, permission)
        if not allowed:
            raise PermissionDeniedError(
                f"permission {permission} is not granted", details={"permission": permission, "reason": reason}
            )

    request = ToolRequest(app, caller, credential)
    return lambda _ctx: (request, authorise)
