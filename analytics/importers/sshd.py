"""OpenSSH server logs: syslog lines (``Mar  1 12:00:00 host sshd[42]: ...``, or with an ISO 8601 time as
rsyslog and ``journalctl -o short-iso`` write them) and ``journalctl -o json`` lines, from ``sshd`` or
``sshd-session``.

Each sign-in attempt becomes one event, ``actor`` ``user@host`` (an account of that host), ``daoId`` the host,
``ref`` ``sshd:<host>``, ``layer`` ``sshd``, ``ip`` the client's address (IPv4 or IPv6), ``method`` how it
authenticated:

- ``Accepted <method> for U from A port P`` -> ``sshd.login`` ALLOW;
- ``Failed <method> for [invalid user ]U from A port P`` -> ``sshd.login`` DENY (``invalid_user`` when so);
- ``Invalid user U from A [port P]`` -> ``sshd.preauth.invalid_user`` DENY (an unknown account was named: the
  password, if one is tried, is its own ``Failed password`` line, so the attempt is not counted twice as a
  sign-in);
- ``Disconnected from`` / ``Connection closed by`` ``[invalid ]authenticating user U A port P [preauth]`` ->
  ``sshd.preauth.abandoned`` WARN (the client gave up before signing in);
- ``maximum authentication attempts exceeded for U from A`` -> ``sshd.preauth.max_attempts`` DENY;
- ``Disconnected from user U A port P`` -> ``sshd.logout`` ALLOW.

Other sshd lines (key exchange, PAM session lines) are not events and are skipped; a line whose time or
program cannot be read is an error. Syslog times have no year: ``year`` when given, else the year that does not
put the line in the future (a December line read in January is last year's); syslog and ``short-iso`` times
without a zone are taken as UTC. The same line twice (the same second, process and message) is two events with
two ids; importing the same log again appends nothing new.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from analytics.importers.fields import ImportedEvent, ImportFailure, clean_ip, event, stable_id
from qerberos.errors import ValidationError
from qerberos.json_input import read_json

FORMAT = "sshd"
_PROGRAMS = ("sshd", "sshd-session")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_SYSLOG = re.compile(
    r"^(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d) (?P<host>\S+) (?P<rest>.*)$"
)
_ISO = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?P<host>\S+) (?P<rest>.*)$"
)
_PROGRAM = re.compile(r"^(?P<program>[\w.-]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$")
_ADDRESS = r"(?P<ip>[0-9A-Fa-f.:]+)"
_MESSAGES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(rf"^Accepted (?P<method>\S+) for (?P<user>.+?) from {_ADDRESS} port \d+"), "sshd.login", "ALLOW"),
    (
        re.compile(rf"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*?) from {_ADDRESS} port \d+"),
        "sshd.login",
        "DENY",
    ),
    (
        re.compile(rf"^Invalid user (?P<user>.*?) from {_ADDRESS}(?: port \d+)?\s*$"),
        "sshd.preauth.invalid_user",
        "DENY",
    ),
    (
        re.compile(
            rf"^(?:Disconnected from|Connection closed by) (?P<invalid>invalid user |authenticating user )"
            rf"(?P<user>.*?) {_ADDRESS} port \d+ \[preauth\]"
        ),
        "sshd.preauth.abandoned",
        "WARN",
    ),
    (
        re.compile(
            rf"^error: maximum authentication attempts exceeded for (?:invalid user )?(?P<user>.*?) from {_ADDRESS}"
        ),
        "sshd.preauth.max_attempts",
        "DENY",
    ),
    (re.compile(rf"^Disconnected from user (?P<user>.+?) {_ADDRESS} port \d+"), "sshd.logout", "ALLOW"),
)


def import_lines(
    lines: Iterable[bytes], *, year: int | None = None, now: dt.datetime | None = None
) -> Iterator[ImportedEvent]:
    """The events of an sshd log (see the module doc); ``now`` (UTC) bounds the inferred year."""
    now = now or dt.datetime.now(dt.UTC)
    seen: collections.Counter[str] = collections.Counter()
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise ImportFailure(number, "the line is not UTF-8 text") from exc
        if not text.strip():
            continue
        try:
            parsed = _journal(text) if text.lstrip().startswith("{") else _syslog(text, year, now)
        except (ValueError, OverflowError, OSError) as exc:
            raise ImportFailure(number, str(exc)) from exc
        if parsed is None:
            continue
        when, host, pid, message = parsed
        mapped = _message(message)
        if mapped is None:
            continue
        type_, verdict, fields = mapped
        key = f"{host}|{when.isoformat()}|{pid}|{message}"
        seen[key] += 1
        user = fields.pop("user")
        yield ImportedEvent(
            number,
            event(
                type_=type_,
                layer="sshd",
                actor=f"{user}@{host}",
                dao_id=host,
                verdict=verdict,
                timestamp=when.isoformat(),
                ref=f"sshd:{host}",
                event_id=stable_id(FORMAT, f"{key}#{seen[key]}"),
                record=text.rstrip("\r\n"),
                **fields,
            ),
        )


def _message(message: str) -> tuple[str, str, dict[str, Any]] | None:
    for pattern, type_, verdict in _MESSAGES:
        found = pattern.match(message)
        if found is None:
            continue
        groups = found.groupdict()
        invalid = (groups.get("invalid") or "").startswith("invalid")
        fields = {
            "user": groups["user"] or "unknown",
            "ip": clean_ip(groups["ip"]),
            "method": groups.get("method"),
            "invalid_user": True if invalid or type_ == "sshd.preauth.invalid_user" else None,
        }
        return type_, verdict, fields
    return None


def _syslog(text: str, year: int | None, now: dt.datetime) -> tuple[dt.datetime, str, str | None, str] | None:
    line = text.rstrip("\r\n")
    iso = _ISO.match(line)
    if iso is not None:
        when = dt.datetime.fromisoformat(iso["stamp"].replace(",", "."))
        host, rest = iso["host"], iso["rest"]
    else:
        found = _SYSLOG.match(line)
        if found is None:
            raise ValueError("not a syslog line (no time and host)")
        host, rest = found["host"], found["rest"]
        when = _dated(found["month"], int(found["day"]), found["time"], year, now)
    program = _PROGRAM.match(rest)
    if program is None:
        raise ValueError("no program name after the host")
    if program["program"] not in _PROGRAMS:
        return None
    return _utc(when), host, program["pid"], program["message"]


def _dated(month: str, day: int, clock: str, year: int | None, now: dt.datetime) -> dt.datetime:
    if month not in _MONTHS:
        raise ValueError(f"unknown month {month!r}")
    hour, minute, second = (int(part) for part in clock.split(":"))
    candidates = [year] if year is not None else [now.year, now.year - 1]
    for candidate in candidates:
        try:
            when = dt.datetime(candidate, _MONTHS[month], day, hour, minute, second, tzinfo=dt.UTC)
        except ValueError as exc:  # 29 February of a year that has none
            if year is not None or candidate != now.year:
                raise ValueError(f"no such date: {month} {day} {candidate}") from exc
            continue
        if year is not None or when <= now + dt.timedelta(days=1):
            return when
    raise ValueError(f"no year puts {month} {day} in the past")


def _journal(text: str) -> tuple[dt.datetime, str, str | None, str] | None:
    try:
        entry = read_json(text)
    except ValidationError as exc:
        raise ValueError(f"{exc.message} {exc.details or ''}") from exc
    if not isinstance(entry, Mapping):
        raise ValueError("a journal entry must be a JSON object")
    if entry.get("SYSLOG_IDENTIFIER") not in _PROGRAMS:
        return None
    try:
        micros = int(entry["__REALTIME_TIMESTAMP"])
        message = str(entry["MESSAGE"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("a journal entry needs __REALTIME_TIMESTAMP and MESSAGE") from exc
    when = dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC)
    return when, str(entry.get("_HOSTNAME") or "localhost"), entry.get("_PID") or entry.get("SYSLOG_PID"), message


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
