"""A minimal Litestar app around the security components, for the security tests.

The real app maps errors in ``api/errors.py``; this stand-in maps the same error types to the same status
codes, so these tests do not depend on the rest of the API.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar, MediaType, Request, Response, get, post

from api.security import PUBLIC_OPT_KEY, SecurityComponents
from api.security.signed_request import SignedHeaders, canonical_payload, request_target
from qerberos import errors

TEST_SEED = bytes(range(32))  # the public test key of tests/fixtures/squid.json ("alice")
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def handle(_request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    headers: dict[str, str] = {}
    if isinstance(exc, errors.AuthenticationError):
        status, code = 401, exc.code
    elif isinstance(exc, errors.PermissionDeniedError):
        status, code = 403, "QONSENT_DENIED"
    elif isinstance(exc, errors.RateLimitedError):
        status, code, headers = 429, "RATE_LIMIT_EXCEEDED", {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, errors.DependencyUnavailableError):
        status, code = 503, "DEPENDENCY_UNAVAILABLE"
    else:
        status, code = getattr(exc, "status_code", 500), "OTHER"
    return Response({"code": code, "message": str(exc)}, status_code=status, headers=headers, media_type=MediaType.JSON)


def make_app(security: SecurityComponents) -> Litestar:
    @get("/health", opt={PUBLIC_OPT_KEY: True})
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @get("/audit", guards=[security.requires("audit:read")])
    async def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"source": request.user.source, "subId": request.user.sub_id, "scheme": request.auth.scheme}

    @post("/audit", guards=[security.requires("qerberos:audit:write")], status_code=201)
    async def write(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.body()
        return {"source": request.user.source, "length": len(body), "json": await request.json()}

    return Litestar(
        route_handlers=[health, read, write],
        middleware=list(security.middleware),
        on_shutdown=list(security.on_shutdown),
        exception_handlers={Exception: handle},
        logging_config=None,
    )


def sign(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    squid_id: str = "alice",
    sub_id: str | None = None,
    dao_id: str | None = None,
    ts: str | None = None,
    seed: bytes = TEST_SEED,
    query: str = "",
) -> dict[str, str]:
    """The signed headers of a request, as a well-behaved caller builds them."""
    timestamp = ts if ts is not None else str(int(time.time() * 1000))
    unsigned = SignedHeaders(squid_id, sub_id, dao_id, timestamp, "")
    payload = canonical_payload(method, request_target(path, query), unsigned, body)
    signature = base64.b64encode(Ed25519PrivateKey.from_private_bytes(seed).sign(payload.encode())).decode()
    headers = {"x-squid-id": squid_id, "x-ts": timestamp, "x-sig": signature}
    if sub_id:
        headers["x-subid"] = sub_id
    if dao_id:
        headers["x-dao-id"] = dao_id
    return headers


def respellings(signature: str) -> list[str]:
    """Every other text that a lenient base64 decoder reads as the bytes of ``signature`` (standard alphabet,
    padded): each padding (full, partial, none) in each alphabet, with each value of the last character's
    unused bits. For a 64-byte Ed25519 signature with a ``+`` or ``/`` that is 16 x 3 x 2 = 96 texts, 95
    besides the original (one signed POST was stored 96 times)."""
    data = signature.rstrip("=")
    unused_bits = {2: 4, 3: 2}[len(data) % 4]
    value = BASE64_ALPHABET.index(data[-1]) >> unused_bits << unused_bits
    texts = {
        spelled
        for low in range(1 << unused_bits)
        for padding in range(len(signature) - len(data) + 1)
        for standard in [data[:-1] + BASE64_ALPHABET[value | low] + "=" * padding]
        for spelled in (standard, standard.replace("+", "-").replace("/", "_"))
    }
    return sorted(texts - {signature})


@dataclasses.dataclass
class Answer:
    """What ``call`` saw: the status, the JSON body, the headers, and how often the app asked for the body."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    receives: int


async def call(
    app: Litestar,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    client: str = "198.51.100.7",
    body_chunks: int = 0,
    chunk: bytes = b"",
) -> Answer:
    """One request through the app's ASGI interface, from the address ``client``, with a body of
    ``body_chunks`` times ``chunk`` sent as the app asks for it (no Content-Length: it cannot know the size
    without reading). A test client always reads the whole body first and always comes from one address."""
    receives = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal receives
        receives += 1
        if receives > max(1, body_chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk if body_chunks else b"", "more_body": receives < body_chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": (client, 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    answer_headers = {name.decode(): value.decode() for name, value in start.get("headers", [])}
    return Answer(start["status"], json.loads(body) if body else {}, answer_headers, receives)
