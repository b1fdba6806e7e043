"""Records no sample shows: any JSON object built from a format's field names with values of any JSON type
(fields missing, null, of the wrong type, nested oddly), and any line after a syslog prefix, either becomes an
event the ledger accepts or stops the import with an ``ImportFailure`` naming its line, never another error."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.importers import ImportFailure, import_events
from models.wire_events import convert_event
from qerberos.errors import QerberosError

_FIELDS = {
    "cloudtrail": ["eventName", "eventSource", "eventTime", "eventID", "userIdentity", "errorCode", "errorMessage",
                   "responseElements", "resources", "sourceIPAddress", "userAgent", "awsRegion", "recipientAccountId"],
    "azuread-signin": ["id", "createdDateTime", "userPrincipalName", "userId", "servicePrincipalId", "status",
                       "ipAddress", "location", "deviceDetail", "appDisplayName", "appId", "properties", "time"],
    "o365": ["Id", "CreationTime", "Operation", "UserId", "UserKey", "ResultStatus", "ClientIP", "Workload",
             "ObjectId", "LogonError", "ExtendedProperties", "OrganizationId"],
    "ocsf": ["class_uid", "activity_id", "status_id", "time", "time_dt", "metadata", "actor", "user",
             "src_endpoint", "http_request", "file", "api", "resources", "cloud"],
}  # fmt: skip
_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30)
_values = st.recursive(
    _scalars
    | st.sampled_from(["2024-03-03T07:00:00Z", "1.2.3.4:80", "[2001:db8::1]:443", "arn:aws:iam::1:user/a", 0, 50126]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(sorted({name for names in _FIELDS.values() for name in names})), inner, max_size=4
        )
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _check(format: str, lines: list[bytes]) -> None:
    try:
        for item in import_events(format, lines):
            # an invalid event is refused, naming its line, by the command (a 400 in the API)
            with contextlib.suppress(QerberosError):
                convert_event(item.event)
    except ImportFailure as failure:
        assert 1 <= failure.line <= len(lines)


@settings(max_examples=150, deadline=None)
@given(
    format=st.sampled_from(sorted(_FIELDS)),
    data=st.data(),
)
def test_any_record_of_a_formats_fields_maps_or_fails_naming_its_line(format: str, data: st.DataObject):
    record = data.draw(st.dictionaries(st.sampled_from(_FIELDS[format]), _values, max_size=len(_FIELDS[format])))
    _check(format, [json.dumps(record).encode() + b"\n"])


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(["Mar  3 06:25:14 host sshd[42]: ", "2024-03-03T06:25:14+00:00 h sshd: ", ""]),
    message=st.text(max_size=80)
    | st.sampled_from(["Failed password for ", "Accepted publickey for x from ", "Invalid user  from :: port 1"]),
)
def test_any_sshd_line_maps_or_fails_naming_its_line(prefix: str, message: str):
    _check("sshd", [(prefix + message).encode("utf-8", "surrogatepass") + b"\n"])


@settings(max_examples=60, deadline=None)
@given(
    entry=st.dictionaries(
        st.sampled_from(["__REALTIME_TIMESTAMP", "MESSAGE", "SYSLOG_IDENTIFIER", "_HOSTNAME", "_PID"]), _values
    )
)
def test_any_journal_entry_maps_or_fails_naming_its_line(entry: dict[str, Any]):
    _check("sshd", [json.dumps({"SYSLOG_IDENTIFIER": "sshd", **entry}).encode() + b"\n"])
