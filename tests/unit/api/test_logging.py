"""qerberos.logging: JSON lines with request ids, error.log, and secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from qerberos.logging import configure_logging, redact, reset_request_id, set_request_id


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi",
        "x-sig=MEUCIQDsecret",
        '{"signature": "c2lnbmF0dXJl"}',
        "token=s3cr3t&x=1",
    ],
)
def test_redact_masks_tokens_and_signatures(text: str) -> None:
    masked = redact(text)
    assert "***" in masked
    for secret in ("abc.def.ghi", "MEUCIQDsecret", "c2lnbmF0dXJl", "s3cr3t"):
        assert secret not in masked


def test_json_lines_carry_the_request_id_and_errors_go_to_error_log(tmp_path: Path, restore_root_logger: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", tmp_path / "logs", stream=stream)
    logger = logging.getLogger("qerberos.test")
    token = set_request_id("req-1")
    try:
        logger.info("appended %d events", 3)
        logger.error("sQuid said no to Bearer tok-123")
    finally:
        reset_request_id(token)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert ["appended 3 events", "sQuid said no to Bearer ***"] == [line["message"] for line in lines]
    assert {"req-1"} == {line["requestId"] for line in lines}
    error_log = [json.loads(line) for line in (tmp_path / "logs" / "error.log").read_text().splitlines()]
    assert ["sQuid said no to Bearer ***"] == [line["message"] for line in error_log]
    assert "tok-123" not in (tmp_path / "logs" / "error.log").read_text()
