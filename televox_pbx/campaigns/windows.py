"""Calling windows in the callee's local time: which zones apply, and when a window opens.

Pure functions (no I/O, no clock): the gate passes `now` in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

from televox_pbx.config.calling_window import CallingWindow, TimezonePolicy

# phonenumbers answers this when it cannot place a number.
_UNKNOWN_ZONE = "Etc/Unknown"
# A window with at least one weekday opens within a week; 9 days covers DST shifts too.
_SEARCH_DAYS = 9


@dataclass(frozen=True, slots=True)
class ZoneResolution:
    zones: tuple[ZoneInfo, ...]  # empty: unknown, hold the contact
    # "contact", "number", "fixed", "unknown", or "conflict": the contact's declared zone
    # is none of the number's zones (and the campaign does not trust it)
    source: str


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zones_for_number(e164: str) -> tuple[ZoneInfo, ...]:
    """Every zone the number may ring in; empty when unknown."""
    try:
        num = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    names = pn_timezone.time_zones_for_number(num)
    zones = [_zone(n) for n in names if n != _UNKNOWN_ZONE]
    if not zones or any(z is None for z in zones):
        return ()  # one unplaceable candidate makes the whole answer unsafe
    return tuple(z for z in zones if z is not None)


def resolve_zones(policy: TimezonePolicy, contact_tz: str | None, e164: str) -> ZoneResolution:
    """The zones the callee may be in. With source "contact", the contact's declared zone
    is intersected with the number's zones: a declared zone narrows a number that spans
    several zones, but cannot move it somewhere the number is not (a typo, a stale
    column), unless `trust_contact_timezone` says so: a contact whose declared zone is
    none of the number's is held ("conflict"). A number with no known zone takes the
    declared one."""
    if policy.source == "fixed" and policy.fixed_zone:
        zone = _zone(policy.fixed_zone)
        return ZoneResolution((zone,), "fixed") if zone else ZoneResolution((), "unknown")
    zones = zones_for_number(e164)
    declared = _zone(contact_tz.strip()) if policy.source == "contact" and contact_tz else None
    if declared is not None:
        if policy.trust_contact_timezone or not zones:
            return ZoneResolution((declared,), "contact")
        same = [z for z in zones if _same_clock(z, declared)]
        return ZoneResolution((same[0],), "contact") if same else ZoneResolution((), "conflict")
    return ZoneResolution(zones, "number") if zones else ZoneResolution((), "unknown")


# Alias zones (US/Eastern, America/New_York) name the same clock: compare their UTC
# offsets at local noon every day over three years instead of their names. Zones that
# agree on every one of those days give the same local time for any window.
_SAME_CLOCK_FROM = datetime(2024, 1, 1, 12)  # naive: a local wall time in each zone
_SAME_CLOCK_DAYS = 3 * 366


@lru_cache(maxsize=1024)
def _same_clock(a: ZoneInfo, b: ZoneInfo) -> bool:
    if a.key == b.key:
        return True
    return all(a.utcoffset(t) == b.utcoffset(t) for t in (
        _SAME_CLOCK_FROM + timedelta(days=d) for d in range(_SAME_CLOCK_DAYS)))


def in_window(window: CallingWindow, zone: ZoneInfo, at: datetime) -> bool:
    local = at.astimezone(zone)
    days = {d.index for d in window.weekdays}
    return local.weekday() in days and window.start <= local.time() < window.end


def in_window_everywhere(window: CallingWindow, zones: tuple[ZoneInfo, ...],
                         at: datetime) -> bool:
    return bool(zones) and all(in_window(window, z, at) for z in zones)


def _local_start(day: date, start: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, start, tzinfo=zone).astimezone(UTC)


def next_open(window: CallingWindow, zones: tuple[ZoneInfo, ...],
              now: datetime) -> datetime | None:
    """Earliest instant >= now inside the window in every zone; None if none within days.

    The intersection of the zones' windows always begins at `now` or at one zone's
    window start, so those are the only candidates to test.
    """
    if not zones:
        return None
    if in_window_everywhere(window, zones, now):
        return now
    candidates: set[datetime] = set()
    for zone in zones:
        today = now.astimezone(zone).date()
        for offset in range(-1, _SEARCH_DAYS):
            t = _local_start(today + timedelta(days=offset), window.start, zone)
            if t > now:
                candidates.add(t)
    for t in sorted(candidates):
        if in_window_everywhere(window, zones, t):
            return t
    return None
