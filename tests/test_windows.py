"""Calling windows: zones, DST, multi-zone numbers, next opening."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from televox_pbx.campaigns.windows import (
    in_window_everywhere,
    next_open,
    resolve_zones,
    zones_for_number,
)
from televox_pbx.config.calling_window import CallingWindow, TimezonePolicy

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
WINDOW = CallingWindow()  # 09:00-20:00, Mon-Sat


def test_nyc_number_resolves_to_new_york() -> None:
    assert zones_for_number("+12125550100") == (NY,)


def test_unknown_region_number_has_no_zone() -> None:
    assert zones_for_number("not a number") == ()


def test_contact_zone_is_checked_against_the_number() -> None:
    policy = TimezonePolicy()
    conflict = resolve_zones(policy, "America/Los_Angeles", "+12125550100")
    assert (conflict.zones, conflict.source) == ((), "conflict")
    assert resolve_zones(policy, "America/New_York", "+12125550100").zones == (NY,)
    assert resolve_zones(policy, "US/Eastern", "+12125550100").zones == (NY,)  # an alias
    assert resolve_zones(policy, "Mars/Olympus", "+12125550100").zones == (NY,)
    trusted = TimezonePolicy(trust_contact_timezone=True)
    assert resolve_zones(trusted, "America/Los_Angeles", "+12125550100").zones == (LA,)
    assert resolve_zones(TimezonePolicy(source="number"), "America/Los_Angeles",
                         "+12125550100").zones == (NY,)
    fixed = TimezonePolicy(source="fixed", fixed_zone="Europe/Paris")
    assert resolve_zones(fixed, None, "+12125550100").source == "fixed"


def test_window_edges_are_local_time() -> None:
    # Monday 2026-01-05; NY is UTC-5 in January.
    assert not in_window_everywhere(WINDOW, (NY,), datetime(2026, 1, 5, 13, 59, tzinfo=UTC))
    assert in_window_everywhere(WINDOW, (NY,), datetime(2026, 1, 5, 14, 0, tzinfo=UTC))
    assert in_window_everywhere(WINDOW, (NY,), datetime(2026, 1, 6, 0, 59, tzinfo=UTC))
    assert not in_window_everywhere(WINDOW, (NY,), datetime(2026, 1, 6, 1, 0, tzinfo=UTC))


def test_sunday_is_closed_and_opens_monday() -> None:
    sunday_noon = datetime(2026, 1, 4, 17, 0, tzinfo=UTC)
    assert not in_window_everywhere(WINDOW, (NY,), sunday_noon)
    assert next_open(WINDOW, (NY,), sunday_noon) == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def test_dst_spring_forward_moves_the_utc_opening() -> None:
    # US DST starts Sunday 2026-03-08; Monday 09:00 EDT is 13:00 UTC, Saturday was 14:00.
    sat_night = datetime(2026, 3, 7, 23, 0, tzinfo=UTC)
    assert next_open(WINDOW, (NY,), datetime(2026, 3, 7, 2, 0, tzinfo=UTC)) == datetime(
        2026, 3, 7, 14, 0, tzinfo=UTC)
    assert next_open(WINDOW, (NY,), datetime(2026, 3, 8, 2, 0, tzinfo=UTC)) == datetime(
        2026, 3, 9, 13, 0, tzinfo=UTC)
    assert in_window_everywhere(WINDOW, (NY,), sat_night)


def test_multi_zone_needs_every_zone_open() -> None:
    both = (NY, LA)
    # 09:30 in New York is 06:30 in LA: closed until LA opens at 17:00 UTC.
    t = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    assert not in_window_everywhere(WINDOW, both, t)
    assert next_open(WINDOW, both, t) == datetime(2026, 1, 5, 17, 0, tzinfo=UTC)


def test_windows_that_never_overlap_give_none() -> None:
    narrow = CallingWindow(start=time(9), end=time(10))
    assert next_open(narrow, (NY, ZoneInfo("Asia/Tokyo")),
                     datetime(2026, 1, 5, 12, tzinfo=UTC)) is None
