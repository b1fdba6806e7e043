"""Importers for the logs teams already have: each maps one source record to an audit event of the upstream
shape (``models.wire_events.AuditEventRequest``, as JSON), which ``qerberos import`` and ``POST /ingest/{format}``
then validate and append like any other event.

Every importer maps identity to ``actor``, the source's own time to ``timestamp``, the outcome to ``verdict``,
the source's own name of the action to ``type`` and of the service to ``layer`` (so that ``config/taxonomy.toml``
classifies them), and fills ``details`` under one set of names that features, rules and risk read
(``analytics.importers.fields``): ``ip``, ``country``, ``user_agent``, ``device``, ``resource``, ``reason``, with
the source record itself (its JSON text, or the log line) under ``source_record``, behind its salted commitment,
so erasure still removes it. Every event gets a stable id (UUID v5) from the record's own id, or from its content
when it has none, so importing a file twice appends it once.
"""

from analytics.importers.fields import ImportedEvent, ImportFailure
from analytics.importers.registry import FORMATS, import_events

__all__ = ["FORMATS", "ImportFailure", "ImportedEvent", "import_events"]
