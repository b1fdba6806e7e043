"""The memory limit a process runs under, exported as ``qerberos_memory_limit_bytes``.

Every long-running process (API replicas, ``qerberos detect``, ``qerberos report schedule``) sets the gauge
once at start, so the alert on resident memory (``process_resident_memory_bytes``) has a limit to compare
with. The limit is ``QERBEROS_MEMORY_LIMIT_BYTES`` when set, else the process's cgroup limit (cgroup v2
``memory.max``, else cgroup v1 ``memory.limit_in_bytes``, as a container sees them), else 0: unknown, which
the alert rule ignores rather than dividing by.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import Gauge

from qerberos.settings import Settings

__all__ = ["MEMORY_LIMIT", "cgroup_memory_limit", "observe_memory_limit"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value (9223372036854771712).
_V1_UNLIMITED = 1 << 62

MEMORY_LIMIT = Gauge(
    "qerberos_memory_limit_bytes",
    "Memory limit of this process (QERBEROS_MEMORY_LIMIT_BYTES, else its cgroup's); 0 when there is none.",
    multiprocess_mode="max",
)


def cgroup_memory_limit(root: Path = CGROUP_ROOT) -> int:
    """The cgroup's memory limit in bytes; 0 without a limit or a readable cgroup."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if not text.isdigit():
            return 0  # v2 "max": no limit
        limit = int(text)
        return 0 if limit >= _V1_UNLIMITED else limit
    return 0


def observe_memory_limit(settings: Settings, root: Path = CGROUP_ROOT) -> int:
    """Set ``qerberos_memory_limit_bytes`` for this process and return it."""
    limit = settings.memory_limit_bytes or cgroup_memory_limit(root)
    MEMORY_LIMIT.set(limit)
    return limit
