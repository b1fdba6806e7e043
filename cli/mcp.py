"""``qerberos mcp``: the MCP tools (``api/mcp``) over stdio (default: as the local identity
``QERBEROS_MCP_IDENTITY``) or streamable HTTP (``--transport http``: the API app with ``/mcp`` mounted, on
``QERBEROS_MCP_PORT``, authenticated like the API)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli._common import reported_errors
from qerberos.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)


def mcp(
    transport: Annotated[
        str, typer.Option(help="stdio (one client, as QERBEROS_MCP_IDENTITY) or http (streamable HTTP at /mcp)")
    ] = "stdio",
) -> None:
    """Serve the MCP tools until the client closes stdio, or until SIGTERM / Ctrl-C (http)."""
    from qerberos.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_dir)
    with reported_errors():
        if transport == "http":
            _serve_http()
        elif transport == "stdio":
            _serve_stdio()
        else:
            raise typer.BadParameter("transport must be stdio or http")


def _serve_http() -> None:
    import uvicorn

    from api.app import create_app
    from api.mcp import mount_mcp
    from models.schema import prepare

    settings = get_settings()
    prepare(settings).close()
    app = create_app(settings)
    mount_mcp(app)
    uvicorn.run(app, host=settings.host, port=settings.mcp_port, log_config=None, access_log=False)


def _serve_stdio() -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    from api.app import create_app
    from api.mcp import build_server, stdio_identity
    from models.schema import prepare

    settings = get_settings()
    prepare(settings).close()
    app = create_app(settings)

    async def serve() -> None:
        async with app.lifespan():
            server = build_server(stdio_identity(app, settings.mcp_identity))
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)
