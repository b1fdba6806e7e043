"""Import benchmark: ``qerberos import --format cloudtrail`` against ``qerberos ingest`` of the same events
already mapped, measured in the same run, so that the mapping is seen not to be what limits an import.

``python -m bench imports --records 1000000``

Writes ``--records`` CloudTrail records one per line (sign-ins that succeed and fail, API calls of IAM users
and assumed roles, AWS services, IPv4 and IPv6), maps them once into the upstream event shape (what
``ingest`` reads), then appends each file into its own fresh SQLite ledger through the code paths of the two
commands (``cli.importing.imported`` and ``ingest``'s decoding, batches of 1,000), ``--repeat`` times in
alternation. Figures (one JSON object): ``map_records_per_s`` (mapping alone, no ledger),
``import_events_per_s`` and ``ingest_events_per_s`` (the median run), ``import_vs_ingest`` (their ratio), and the
same per second of this process's CPU (``*_per_cpu_s``, ``import_vs_ingest_cpu``: SQLite runs in the process, so
this is the whole work of each, and what a machine shared with other loads still measures fairly).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from analytics.importers import import_events
from cli._appending import append_in_batches
from cli.importing import imported
from models.ledger import initialise
from models.records import NewEvent
from models.wire_events import decode_event
from qerberos.settings import load_settings

_BATCH = 1000
_ACCOUNT = "111122223333"
_CALLS = (
    ("DescribeInstances", "ec2.amazonaws.com"),
    ("GetObject", "s3.amazonaws.com"),
    ("AttachRolePolicy", "iam.amazonaws.com"),
    ("PutItem", "dynamodb.amazonaws.com"),
)


def _record(n: int, rng: random.Random) -> dict[str, Any]:
    base = {
        "eventVersion": "1.08",
        "eventID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "eventTime": f"2024-03-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{n * 7 % 60:02d}Z",
        "awsRegion": "us-east-1",
        "sourceIPAddress": f"198.51.{n % 250}.{n % 200}" if n % 5 else f"2001:db8::{n % 65535:x}",
        "userAgent": "aws-cli/2.13.5 Python/3.11.4 Linux/6.1",
        "requestID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "eventType": "AwsApiCall",
        "recipientAccountId": _ACCOUNT,
    }
    user = f"arn:aws:iam::{_ACCOUNT}:user/user{n % 5000}"
    kind = n % 10
    if kind == 0:
        failed = rng.random() < 0.3
        return {
            **base,
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "eventType": "AwsConsoleSignIn",
            "userIdentity": {"type": "IAMUser", "arn": user, "accountId": _ACCOUNT, "userName": f"user{n % 5000}"},
            "responseElements": {"ConsoleLogin": "Failure" if failed else "Success"},
            **({"errorMessage": "Failed authentication"} if failed else {}),
        }
    if kind == 1:
        return {
            **base,
            "eventSource": "s3.amazonaws.com",
            "eventName": "GetBucketAcl",
            "sourceIPAddress": "cloudtrail.amazonaws.com",
            "userIdentity": {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
            "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::amzn-s3-demo-bucket"}],
        }
    role = f"arn:aws:iam::{_ACCOUNT}:role/Role{n % 40}"
    identity = {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{_ACCOUNT}:assumed-role/Role{n % 40}/session{n % 900}",
        "accountId": _ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role, "accountId": _ACCOUNT}},
    }
    name, source = _CALLS[n % len(_CALLS)]
    denied = rng.random() < 0.05
    return {
        **base,
        "eventSource": source,
        "eventName": name,
        "userIdentity": identity,
        "requestParameters": {"instancesSet": {"items": [{"instanceId": f"i-{n:017x}"}]}},
        **({"errorCode": "AccessDenied", "errorMessage": "not authorized"} if denied else {}),
    }


def _write_inputs(directory: Path, records: int) -> tuple[Path, Path, float]:
    """The CloudTrail lines, the same events mapped (ingest's input), and the mapping's own records per second."""
    rng = random.Random(20261207)
    raw = directory / "cloudtrail.jsonl"
    with raw.open("w", encoding="utf-8") as out:
        for n in range(records):
            out.write(json.dumps(_record(n, rng), separators=(",", ":")) + "\n")
    mapped = directory / "mapped.jsonl"
    started = time.perf_counter()
    with raw.open("rb") as lines, mapped.open("w", encoding="utf-8") as out:
        for item in import_events("cloudtrail", lines):
            out.write(json.dumps(item.event, separators=(",", ":"), ensure_ascii=False) + "\n")
    return raw, mapped, records / (time.perf_counter() - started)


def _ingested(path: Path) -> Iterator[NewEvent]:
    with path.open("rb") as lines:
        for line in lines:
            yield decode_event(line).to_new_event(source="cli")


def _imported(path: Path) -> Iterator[NewEvent]:
    with path.open("rb") as lines:
        yield from imported("cloudtrail", lines)


def _append_rate(work: Path, name: str, events: Iterator[NewEvent], records: int) -> tuple[float, float]:
    home = work / name
    os.environ["QERBEROS_HOME"] = str(home)
    os.environ["QERBEROS_DATABASE_URL"] = f"sqlite:///{home}/ledger.db"
    with initialise(load_settings()) as ledger:
        started, cpu = time.perf_counter(), time.process_time()
        appended = append_in_batches(ledger, events, _BATCH)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if appended != records:
        raise SystemExit(f"{name}: appended {appended} of {records}")
    return records / elapsed, records / cpu


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench imports")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as temporary:
        work = Path(temporary)
        raw, mapped, map_rate = _write_inputs(work, args.records)
        ingest, imports = [], []
        for run in range(args.repeat):
            ingest.append(_append_rate(work, f"ingest-{run}", _ingested(mapped), args.records))
            imports.append(_append_rate(work, f"import-{run}", _imported(raw), args.records))
    wall = [statistics.median(rate for rate, _ in runs) for runs in (imports, ingest)]
    cpu = [statistics.median(rate for _, rate in runs) for runs in (imports, ingest)]
    figures = {
        "records": args.records,
        "map_records_per_s": round(map_rate),
        "import_events_per_s": round(wall[0]),
        "ingest_events_per_s": round(wall[1]),
        "import_vs_ingest": round(wall[0] / wall[1], 3),
        "import_events_per_cpu_s": round(cpu[0]),
        "ingest_events_per_cpu_s": round(cpu[1]),
        "import_vs_ingest_cpu": round(cpu[0] / cpu[1], 3),
    }
    print(json.dumps(figures))
