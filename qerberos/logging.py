"""Logging, configured once at the entry point (``qerberos serve`` and the other long-running commands).

- JSON lines on stderr when it is not a terminal (one object a line: ``time``, ``level``, ``logger``,
  ``message``, ``requestId`` when inside a request, ``exception`` when there is one); a short readable
  line on a terminal.
- Records of level ERROR and above are also appended to ``error.log`` in the log directory
  (``QERBEROS_LOG_DIR``, default ``QERBEROS_HOME/../logs``: ``./logs`` next to ``./data`` by default, the
  runbook's ``tail -f logs/error.log``).
- Bearer tokens, ``x-sig`` signatures and token-like query values are masked in every record, wherever
  they appear; request headers are never logged at all.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import logging.handlers
import re
import sys
from pathlib import Path
from typing import Any, TextIO

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("qerberos_request_id", default=None)

_SECRETS = re.compile(
    r"(?i)(authorization[\"':=\s]+(?:(?:bearer|basic)\s+)?|bearer\s+|x-sig[\"':=\s]+|signature[\"':=\s]+"
    r"|token[\"':=\s]+)[^\s\"',;&]+"
)
_CONFIGURED_MARK = "_qerberos_handler"


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


def redact(text: str) -> str:
    """Mask the value after ``Bearer``, ``x-sig``, ``signature``, ``token`` and ``authorization``."""
    return _SECRETS.sub(lambda match: f"{match.group(1)}***", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message and attaches the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):
                record.msg = str(record.msg)
            record.args = None
        record.msg = redact(str(record.msg))
        if not hasattr(record, "requestId"):
            record.requestId = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line; extra fields given with ``extra={...}`` are included."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "requestId", None)
        prefix = f"[{request_id}] " if request_id else ""
        line = (
            f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {prefix}{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def configure_logging(level: str = "INFO", log_dir: Path | None = None, *, stream: TextIO | None = None) -> None:
    """Install qerberos's handlers on the root logger (again: replaces the earlier ones)."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _CONFIGURED_MARK, False):
            root.removeHandler(handler)
            handler.close()
    redacting = RedactingFilter()

    console = logging.StreamHandler(stream)
    console.setFormatter(_ConsoleFormatter() if stream.isatty() else JsonFormatter())
    console.addFilter(redacting)
    setattr(console, _CONFIGURED_MARK, True)
    root.addHandler(console)

    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        errors = logging.handlers.WatchedFileHandler(log_dir / "error.log", encoding="utf-8")
        errors.setLevel(logging.ERROR)
        errors.setFormatter(JsonFormatter())
        errors.addFilter(redacting)
        setattr(errors, _CONFIGURED_MARK, True)
        root.addHandler(errors)

    root.setLevel(level.upper())
    # Uvicorn's loggers go through ours; its access log is replaced by qerberos's own request log.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
