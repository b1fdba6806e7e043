"""MCP: qerberos's tools for agents (``tools``), served over stdio and streamable HTTP (``server``)."""

from api.mcp.server import MCP_PATH, build_server, mount_mcp, stdio_identity
from api.mcp.tools import TOOL_PERMISSIONS, ToolRequest, call_tool, tool_definitions

__all__ = [
    "MCP_PATH",
    "TOOL_PERMISSIONS",
    "ToolRequest",
    "build_server",
    "call_tool",
    "mount_mcp",
    "stdio_identity",
    "tool_definitions",
]
