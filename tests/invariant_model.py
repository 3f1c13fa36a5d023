"""The reference model for issue 12's invariants, written apart from the product.

Nothing here imports televox_pbx: numbers are normalised with phonenumbers, candidate
zones come from phonenumbers' timezone lookup plus the contact's declared zone, windows
are evaluated with zoneinfo, and the database is read with the sqlite3 module. The
property test and the SIGKILL crash test both judge the store with these checks.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

# An attempt in one of these is a call that may still be up (or about to be placed).
LIVE = ("intent", "originated", "ringing", "answered")
_LIVE_SQL = "('intent','originated','ringing','answered')"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@lru_cache(maxsize=4096)
def e164(raw: str | None, region: str = "US") -> str | None:
    """Any way a person writes a number -> E.164, or None when it is not a number."""
    if not raw:
        return None
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1024)
def number_zones(number: str) -> tuple[str, ...]:
    """Every zone the number may ring in, by phonenumbers; () when it cannot be placed."""
    try:
        names = pn_timezone.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(sorted(n for n in names if n != "Etc/Unknown"))


def _valid_zone(name: str | None) -> str | None:
    if not name or not name.strip():
        return None
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name.strip()


@dataclass(frozen=True)
class WindowSpec:
    start: time
    end: time  # the latest local time a call may start (treated as inclusive here)
    weekdays: frozenset[int]  # Monday is 0


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    window: WindowSpec
    policy: str  # "contact" | "number" | "fixed"
    fixed_zone: str | None = None
    max_attempts: int = 3

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> CampaignSpec:
        """From the campaign's YAML-shaped dict (the same data the test gives the product)."""
        win = dict(data.get("calling_window") or {})
        pol = dict(data.get("timezone_policy") or {})
        retry = dict(data.get("retry") or {})
        days = win.get("weekdays") or list(WEEKDAYS[:6])
        return cls(
            name=str(data["name"]),
            window=WindowSpec(_clock(str(win.get("start", "09:00"))),
                              _clock(str(win.get("end", "20:00"))),
                              frozenset(WEEKDAYS.index(str(d)) for d in days)),
            policy=str(pol.get("source", "contact")), fixed_zone=pol.get("fixed_zone"),
            max_attempts=int(retry.get("max_attempts_per_phone", 3)))


def _clock(text: str) -> time:
    parts = [int(p) for p in text.split(":")]
    return time(*parts)


def candidate_zones(spec: CampaignSpec, number: str, declared: str | None) -> tuple[str, ...]:
    """The zones the callee may be in; () means unknown, so nobody may dial them.

    A declared zone narrows the number's zones when it is one of them; a declared zone the
    number contradicts is added to them (the callee may be in either place); `number`
    policy ignores the declaration; `fixed` is the operator's explicit override.
    """
    if spec.policy == "fixed" and spec.fixed_zone:
        return (spec.fixed_zone,)
    zones = number_zones(number)
    mine = _valid_zone(declared) if spec.policy == "contact" else None
    if mine is None:
        return zones
    if mine in zones:
        return (mine,)
    return tuple(sorted({*zones, mine}))


def in_window(window: WindowSpec, zone: str, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(zone))
    return (local.weekday() in window.weekdays
            and window.start <= local.time().replace(tzinfo=None) <= window.end)


def parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# ---- reading the database -------------------------------------------------------------

@dataclass(frozen=True)
class Attempt:
    id: str
    campaign: str | None
    contact_id: int | None
    phone: str
    number: str | None  # E.164 by our own normaliser
    direction: str
    status: str
    created_at: datetime | None
    duration_s: float | None


def connect(db: Path | str) -> sqlite3.Connection:
    """Read-only; sees what other connections have committed, nothing else. A PostgreSQL
    URL gets the same reading interface (pg_support.PgReader)."""
    if str(db).startswith("postgresql://"):
        from pg_support import PgReader
        return PgReader(str(db))  # type: ignore[return-value]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
    conn.row_factory = sqlite3.Row
    return conn


def attempts(conn: sqlite3.Connection) -> list[Attempt]:
    rows = conn.execute(
        "SELECT a.id, c.name AS campaign, a.contact_id, a.phone, a.direction, a.status,"
        " a.created_at, a.duration_s FROM call_attempts a"
        " LEFT JOIN campaigns c ON c.id = a.campaign_id ORDER BY a.created_at, a.id").fetchall()
    return [Attempt(str(r["id"]), r["campaign"], r["contact_id"], str(r["phone"]),
                    e164(str(r["phone"])), str(r["direction"]), str(r["status"]),
                    parse_ts(r["created_at"]), r["duration_s"]) for r in rows]


def dnc_commits(conn: sqlite3.Connection) -> dict[str, datetime]:
    """Earliest time each number went on the DNC list, as the store recorded it (its own
    format whatever it is: the number column is normalised here)."""
    out: dict[str, datetime] = {}
    rows = [*conn.execute("SELECT e164 AS n, added_at AS t FROM dnc").fetchall(),
            *conn.execute("SELECT e164 AS n, at AS t FROM dnc_audit WHERE action = 'add'")
            .fetchall()]
    for r in rows:
        num, at = e164(str(r["n"])), parse_ts(r["t"])
        if num is not None and at is not None and (num not in out or at < out[num]):
            out[num] = at
    return out


# ---- the invariants -------------------------------------------------------------------

@dataclass
class OptOut:
    """An opt-out the test performed: when it returned, and which attempts existed then."""

    number: str
    at: datetime
    before: frozenset[str] = frozenset()


@dataclass
class Model:
    specs: dict[str, CampaignSpec]
    # (campaign, E.164) -> the zone declared on that contact (None: not declared)
    declared: dict[tuple[str, str], str | None] = field(default_factory=dict)
    opt_outs: list[OptOut] = field(default_factory=list)


def one_live_per_number(rows: Iterable[Attempt]) -> list[str]:
    live: dict[str, list[Attempt]] = defaultdict(list)
    for a in rows:
        if a.status in LIVE:
            live[a.number or a.phone].append(a)
    return [f"{n}: {len(v)} live attempts at once "
            f"{sorted((a.campaign or a.direction, a.status) for a in v)}"
            for n, v in sorted(live.items()) if len(v) > 1]


def no_dial_after_dnc(rows: Iterable[Attempt], model: Model,
                      stored: Mapping[str, datetime]) -> list[str]:
    out: list[str] = []
    for a in rows:
        if a.direction != "outbound" or a.number is None or a.created_at is None:
            continue
        for o in model.opt_outs:
            if o.number != a.number:
                continue
            if a.created_at > o.at or (a.created_at == o.at and a.id not in o.before):
                out.append(f"{a.number}: attempt {a.status} in {a.campaign} created "
                           f"{a.created_at:%a %H:%M:%S} after the opt-out at {o.at:%H:%M:%S}")
        at = stored.get(a.number)
        if at is not None and a.created_at > at:
            out.append(f"{a.number}: attempt in {a.campaign} created {a.created_at:%H:%M:%S}"
                       f" after its DNC entry ({at:%H:%M:%S})")
    return out


def inside_windows(rows: Iterable[Attempt], model: Model) -> list[str]:
    out: list[str] = []
    for a in rows:
        if a.direction != "outbound" or a.campaign is None or a.created_at is None:
            continue
        spec = model.specs.get(a.campaign)
        if spec is None:
            continue
        number = a.number or a.phone
        zones = candidate_zones(spec, number, model.declared.get((a.campaign, number)))
        if not zones:
            out.append(f"{number}: dialled by {a.campaign} with no known zone")
            continue
        bad = [z for z in zones if not in_window(spec.window, z, a.created_at)]
        if bad:
            local = ", ".join(f"{z} {a.created_at.astimezone(ZoneInfo(z)):%a %H:%M}"
                              for z in bad)
            out.append(f"{number}: dialled by {a.campaign} outside its window ({local})")
    return out


def calling_has_live_attempt(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.id, c.status, p.name AS campaign FROM contacts c"
        " JOIN campaigns p ON p.id = c.campaign_id"
        " WHERE c.status IN ('calling','connected') AND NOT EXISTS ("
        f" SELECT 1 FROM call_attempts a WHERE a.contact_id = c.id AND a.status IN {_LIVE_SQL})"
    ).fetchall()
    return [f"contact {r['id']} of {r['campaign']} is {r['status']} with no live attempt"
            for r in rows]


def check(db: Path, model: Model, *, recovered: bool) -> list[str]:
    """Every violated invariant, in words; [] when the store is sound."""
    conn = connect(db)
    try:
        rows = attempts(conn)
        found = [*one_live_per_number(rows),
                 *no_dial_after_dnc(rows, model, dnc_commits(conn)),
                 *inside_windows(rows, model)]
        if recovered:
            found += calling_has_live_attempt(conn)
        return found
    finally:
        conn.close()


def durations_not_invented(rows: Iterable[Attempt],
                           pbx: Mapping[str, tuple[float | None, float | None]],
                           tolerance_s: float) -> list[str]:
    """A stored duration must be the PBX's answer-to-hangup time (event timestamps) or
    NULL. `pbx` maps a call id to its (answer, hangup) epoch seconds as the PBX sent them."""
    out: list[str] = []
    for a in rows:
        if a.duration_s is None:
            continue
        answered, hung = pbx.get(a.id, (None, None))
        if answered is None or hung is None:
            out.append(f"attempt {a.id[:8]} ({a.status}) stores {a.duration_s:.1f} s but the"
                       " PBX never reported both its answer and its hangup")
        elif abs((hung - answered) - a.duration_s) > tolerance_s:
            out.append(f"attempt {a.id[:8]} ({a.status}) stores {a.duration_s:.1f} s; the PBX"
                       f" says {hung - answered:.1f} s")
    return out
