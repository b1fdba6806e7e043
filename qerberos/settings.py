"""Every setting of qerberos, read once from ``QERBEROS_*`` environment variables.

The README lists each variable with its default; ``qerberos config`` prints the effective values
with secrets masked. Nothing else in the code base reads the environment for configuration.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import urllib.parse
from pathlib import Path
from typing import Any

from qerberos import verifier
from qerberos.errors import ConfigurationError

# Secrets as a whole; besides these, every URL of every setting has its password masked (``mask_url``).
_SECRET_FIELDS = frozenset({"metrics_token", "key_passphrase", "monitor_token"})
_PASSWORD_PARAMETERS = frozenset({"password", "passwd", "pwd"})


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    log_origin: str
    checkpoint_interval: float
    key_passphrase: str | None
    host: str
    port: int
    workers: int
    log_level: str
    auth_mode: str
    squid_url: str
    qonsent_url: str
    redis_url: str | None
    rate_limit_per_minute: int
    max_body_bytes: int
    metrics_token: str | None
    mlflow_tracking_uri: str
    log_dir: Path
    # Security (api/security): positive sQuid answers are cached this long (never past expiresAt); Qonsent
    # decisions this long; a cached decision still serves this long past its TTL while Qonsent is down;
    # timeout of one call to sQuid or Qonsent.
    squid_cache_ttl: float = 60.0
    qonsent_cache_ttl: float = 30.0
    qonsent_grace: float = 300.0
    security_timeout: float = 2.0
    # Failed authentications per client address (and per claimed identity) a minute, then 429 (0: no limit).
    auth_failures_per_minute: int = 60
    # ``qerberos report schedule`` serves its own /metrics (prometheus_client) on this port.
    scheduler_metrics_port: int = 9465
    # Live detection runs inside the API process (``embedded``: the one-machine default) or not at all
    # there (``off``: API replicas in production, beside one ``qerberos detect`` process, whose own
    # /metrics is served on ``detector_metrics_port``).
    live_detection: str = "embedded"
    detector_metrics_port: int = 9466
    # The memory limit a process reports as ``qerberos_memory_limit_bytes``; 0: read it from the cgroup.
    memory_limit_bytes: int = 0
    # ``qerberos report schedule`` verifies the whole ledger every this many seconds (0: never).
    verify_interval: float = 3600.0
    # Paper size of the compliance reports' PDF: ``A4`` or ``Letter``.
    report_paper: str = "A4"
    # With several workers, uvicorn's supervisor pings each every half second and replaces one that has
    # not answered within this many seconds (a worker starting up answers once its imports are done).
    worker_healthcheck_timeout: int = 60
    # The log's witnesses (C2SP tlog-witness): ``(URL, cosignature/v1 verifier key)`` each; every new
    # checkpoint is submitted to them, each call allowed ``witness_timeout`` seconds.
    witnesses: tuple[tuple[str, str], ...] = ()
    witness_timeout: float = 5.0
    # ``qerberos monitor`` reads the entry bundles of the log it follows with this bearer token (audit:read).
    monitor_token: str | None = None
    # Published events (pipelines/events): the NATS server (``nats://host:4222``; unset: nothing is published),
    # the JetStream stream they go to, whether the API process publishes (``embedded``) or leaves it to
    # ``qerberos publish`` (``off``), whose own /metrics is served on ``publisher_metrics_port``.
    events_url: str | None = None
    events_stream: str = "QERBEROS_EVENTS"
    event_publishing: str = "embedded"
    publisher_metrics_port: int = 9467
    # ``qerberos mcp``: the local identity the stdio transport runs as (its permissions are the identity's),
    # and the port of the streamable HTTP transport.
    mcp_identity: str = "mcp"
    mcp_port: int = 3040
    # ``/schema`` (the API's docs page) and its documents need no token; ``QERBEROS_PUBLIC_SCHEMA=false`` hides them.
    public_schema: bool = True
    # A directory whose configuration files (``qerberos.package_data.CONFIG_FILES``) replace the defaults
    # shipped in the package; a file it lacks keeps its default.
    config_dir: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def public_view(self) -> dict[str, Any]:
        """The settings with secrets masked, for ``qerberos config``, backups and ``/health/detailed``: tokens
        and the passphrase whole, and the password of every URL (database, Redis, MLflow, witnesses...)."""
        view: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            view[field.name] = "***" if field.name in _SECRET_FIELDS and value else _without_passwords(value)
        return view


def mask_url(url: str) -> str:
    """``url`` with its password (in its authority, or a ``password`` query parameter) replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"  # not a URL we can read: show none of it
    masked = url
    if password is not None:
        userinfo, _, location = parts.netloc.rpartition("@")
        masked = masked.replace(parts.netloc, f"{userinfo.split(':', 1)[0]}:***@{location}", 1)
    if parts.query:
        parameters = [
            f"{name}=***" if name.lower() in _PASSWORD_PARAMETERS else f"{name}{sign}{value}"
            for name, sign, value in (item.partition("=") for item in parts.query.split("&"))
        ]
        masked = masked.replace(f"?{parts.query}", "?" + "&".join(parameters), 1)
    return masked


def _without_passwords(value: Any) -> Any:
    """A setting's value for display: URLs masked (also inside tuples), paths as text."""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if isinstance(value, tuple):
        return [_without_passwords(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def _env(name: str, default: str) -> str:
    return os.environ.get(f"QERBEROS_{name}", default)


def _optional(name: str) -> str | None:
    return os.environ.get(f"QERBEROS_{name}") or None


def _number(name: str, default: str, kind: type[int] | type[float]) -> Any:
    text = _env(name, default)
    try:
        value = kind(text)
    except ValueError as exc:
        raise ConfigurationError(f"QERBEROS_{name} must be a number, not {text!r}") from exc
    if value < 0:
        raise ConfigurationError(f"QERBEROS_{name} must not be negative, not {text!r}")
    return value


def _seconds(name: str, default: str) -> int:
    """A whole number of seconds, at least 1."""
    value: int = _number(name, default, int)
    if value < 1:
        raise ConfigurationError(f"QERBEROS_{name} must be at least 1 (seconds), not {value}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default)
    if value not in choices:
        raise ConfigurationError(f"QERBEROS_{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _directory(name: str) -> Path | None:
    """An optional directory that must exist when it is set (a typo must not silently mean the defaults)."""
    text = _optional(name)
    if text is None:
        return None
    path = Path(text).resolve()
    if not path.is_dir():
        raise ConfigurationError(f"QERBEROS_{name} is not a directory: {path}")
    return path


def _witnesses() -> tuple[tuple[str, str], ...]:
    """``QERBEROS_WITNESSES``: ``URL VKEY`` pairs separated by commas (base64 has neither spaces nor commas)."""
    text = _env("WITNESSES", "")
    witnesses = []
    for entry in filter(None, (item.strip() for item in text.split(","))):
        url, _, vkey = entry.partition(" ")
        vkey = vkey.strip()
        try:
            verifier.parse_verifier_key(vkey, verifier.ALG_COSIGNATURE_V1)
        except verifier.VerificationError as exc:
            raise ConfigurationError(f"QERBEROS_WITNESSES: {entry!r} is not 'URL VKEY': {exc.reason}") from exc
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"QERBEROS_WITNESSES: {url!r} is not an http(s) URL")
        witnesses.append((url.rstrip("/"), vkey))
    return tuple(witnesses)


def load_settings() -> Settings:
    """Read the environment now (tests call this; the app uses the cached ``get_settings``)."""
    home = Path(_env("HOME", "./data")).resolve()
    return Settings(
        home=home,
        database_url=_env("DATABASE_URL", f"sqlite:///{home / 'qerberos.db'}"),
        log_origin=_env("LOG_ORIGIN", "qerberos.q.anarq.org/audit"),
        checkpoint_interval=_number("CHECKPOINT_INTERVAL", "5", float),
        key_passphrase=_optional("KEY_PASSPHRASE"),
        host=_env("HOST", "127.0.0.1"),
        port=_number("PORT", "3000", int),
        workers=_number("WORKERS", "1", int),
        log_level=_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        auth_mode=_choice("AUTH_MODE", "local", ("local", "remote")),
        squid_url=_env("SQUID_URL", "http://localhost:3010"),
        qonsent_url=_env("QONSENT_URL", "http://localhost:3020"),
        redis_url=_optional("REDIS_URL"),
        rate_limit_per_minute=_number("RATE_LIMIT_PER_MINUTE", "6000", int),
        auth_failures_per_minute=_number("AUTH_FAILURES_PER_MINUTE", "60", int),
        max_body_bytes=_number("MAX_BODY_BYTES", str(16 * 1024 * 1024), int),
        metrics_token=_optional("METRICS_TOKEN"),
        # One store per home, whatever the working directory (its artifacts beside it: ``use_experiment``).
        mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
        log_dir=Path(_env("LOG_DIR", str(home.parent / "logs"))).resolve(),
        squid_cache_ttl=_number("SQUID_CACHE_TTL", "60", float),
        qonsent_cache_ttl=_number("QONSENT_CACHE_TTL", "30", float),
        qonsent_grace=_number("QONSENT_GRACE", "300", float),
        security_timeout=_number("SECURITY_TIMEOUT", "2", float),
        scheduler_metrics_port=_number("SCHEDULER_METRICS_PORT", "9465", int),
        live_detection=_choice("LIVE_DETECTION", "embedded", ("embedded", "off")),
        detector_metrics_port=_number("DETECTOR_METRICS_PORT", "9466", int),
        memory_limit_bytes=_number("MEMORY_LIMIT_BYTES", "0", int),
        verify_interval=_number("VERIFY_INTERVAL", "3600", float),
        report_paper=_choice("REPORT_PAPER", "A4", ("A4", "Letter")),
        worker_healthcheck_timeout=_seconds("WORKER_HEALTHCHECK_TIMEOUT", "60"),
        witnesses=_witnesses(),
        witness_timeout=_number("WITNESS_TIMEOUT", "5", float),
        monitor_token=_optional("MONITOR_TOKEN"),
        events_url=_optional("EVENTS_URL"),
        events_stream=_env("EVENTS_STREAM", "QERBEROS_EVENTS"),
        event_publishing=_choice("EVENT_PUBLISHING", "embedded", ("embedded", "off")),
        publisher_metrics_port=_number("PUBLISHER_METRICS_PORT", "9467", int),
        mcp_identity=_env("MCP_IDENTITY", "mcp"),
        mcp_port=_number("MCP_PORT", "3040", int),
        public_schema=_choice("PUBLIC_SCHEMA", "true", ("true", "false")) == "true",
        config_dir=_directory("CONFIG_DIR"),
    )


@functools.cache
def get_settings() -> Settings:
    return load_settings()
