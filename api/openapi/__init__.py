"""The service's contract as a document and a page: ``/schema`` (Swagger UI, its files served by us),
``/schema/openapi.json`` and ``/schema/openapi.yaml``, all three the exact document of ``api.openapi.document``.

They are public (no token) unless ``QERBEROS_PUBLIC_SCHEMA=false``: the document describes the routes, which the
upstream contract publishes anyway, and nothing of the data behind them.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from typing import Any

from litestar import Request, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from api.openapi.document import exact_document
from api.security import PUBLIC_OPT_KEY

__all__ = ["ASSETS_PATH", "SCHEMA_PATH", "exact_document", "openapi_config"]

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
_SWAGGER_UI = importlib.resources.files("api.openapi") / "swagger_ui"
_DESCRIPTION = (
    "The verifiable audit ledger of the Q ecosystem. Deviations from and additions to the upstream contract, "
    "and the aliases of its operation ids: docs/API.md."
)


class ExactDocument(OpenAPIRenderPlugin):
    """Renders with ``inner`` the exact document rather than Litestar's generated one (made once per app)."""

    def __init__(self, inner: OpenAPIRenderPlugin) -> None:
        super().__init__(path=inner.paths, media_type=inner.media_type, favicon=inner.favicon, style=inner.style)
        self.inner = inner
        self._document: dict[str, Any] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._document is None:
            self._document = exact_document(request.app, openapi_schema)
        return self.inner.render(request, self._document)

    def receive_router(self, router: Router) -> None:
        self.inner.receive_router(router)


def _plugins() -> Sequence[OpenAPIRenderPlugin]:
    swagger = SwaggerRenderPlugin(
        path="/",
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )
    return [ExactDocument(swagger), ExactDocument(JsonRenderPlugin()), ExactDocument(YamlRenderPlugin())]


def openapi_config(version: str, *, public: bool) -> OpenAPIConfig:
    """The app's OpenAPI configuration; ``public``: the page and the documents need no token."""
    opt = {PUBLIC_OPT_KEY: True} if public else {}
    assets = create_static_files_router(
        ASSETS_PATH.removeprefix(SCHEMA_PATH),
        directories=[str(_SWAGGER_UI)],
        opt=opt,
        name="swagger-ui",
        include_in_schema=False,
    )
    return OpenAPIConfig(
        title="Qerberos Security & Audit API",
        version=version,
        description=_DESCRIPTION,
        path=SCHEMA_PATH,
        render_plugins=_plugins(),
        openapi_router=Router(SCHEMA_PATH, route_handlers=[assets], opt=opt, include_in_schema=False),
        components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer")}),
        security=[{"BearerAuth": []}],
    )
