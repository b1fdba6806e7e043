"""Requests that need a token's answer while sQuid is being asked about it wait for that one request."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.security.squid import SquidClient
from qerberos.errors import AuthenticationError

GOOD_TOKEN = "good-token"


class _SlowSquid(ThreadingHTTPServer):
    """sQuid's ``/api/v1/auth/verify`` on a loopback port, answering after 0.2 s; keeps the tokens asked about."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _VerifyHandler)
        self.tokens: list[str] = []


class _VerifyHandler(BaseHTTPRequestHandler):
    server: _SlowSquid

    def do_POST(self) -> None:
        token = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["token"]
        self.server.tokens.append(token)
        time.sleep(0.2)
        answer = {"valid": token == GOOD_TOKEN, "identity": {"squidId": "did:squid:alice"}}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def squid() -> Iterator[_SlowSquid]:
    server = _SlowSquid()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _verify_together(squid: _SlowSquid, token: str, requests: int) -> list[object]:
    async def together() -> list[object]:
        client = SquidClient(f"http://127.0.0.1:{squid.server_port}")
        try:
            return await asyncio.gather(*(client.verify_token(token) for _ in range(requests)), return_exceptions=True)
        finally:
            await client.aclose()

    return asyncio.run(together())


def test_concurrent_requests_for_one_token_make_one_request_to_squid(squid: _SlowSquid) -> None:
    answers = _verify_together(squid, GOOD_TOKEN, 20)
    assert ([GOOD_TOKEN], {"did:squid:alice"}) == (squid.tokens, {getattr(a, "squid_id", a) for a in answers})


def test_concurrent_requests_for_a_refused_token_are_all_refused_after_one_request(squid: _SlowSquid) -> None:
    answers = _verify_together(squid, "bad-token", 20)
    assert (["bad-token"], {AuthenticationError}) == (squid.tokens, {type(a) for a in answers})
