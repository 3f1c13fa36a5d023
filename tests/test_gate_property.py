"""Property: whatever the zones, DST dates, windows, clock times and number formats, the
dialer never originates outside the window (in every candidate zone) or to a DNC number."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from dialer_support import FakeOriginator, add_dnc, make_campaign, seed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as pn_tz

from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.clock import FakeClock
from televox_pbx.config.calling_window import Weekday
from televox_pbx.store import Store

# Single-zone, multi-zone (208: Boise+LA, 605/701: Denver+Central) and foreign numbers.
NUMBERS = ["+12125550101", "+14155550102", "+12085550103", "+16055550104", "+17015550105",
           "+13125550106", "+19075550107", "+18085550108", "+442079460109", "+61255501010",
           "+33142685311", "+19155550112"]
ZONES = [None, "America/New_York", "America/Los_Angeles", "America/Chicago", "Asia/Tokyo",
         "Europe/London", "Not/AZone", "Australia/Sydney"]


def formats(e164: str) -> list[str]:
    num = phonenumbers.parse(e164)
    out = [e164, phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)]
    if num.country_code == 1:
        nat = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
        digits = str(num.national_number)
        out += [nat, digits, f"1-{digits[:3]}-{digits[3:6]}-{digits[6:]}",
                f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"]
    return out


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(1, 6))
    picks = draw(st.lists(st.sampled_from(NUMBERS), min_size=n, max_size=n, unique=True))
    start_h = draw(st.integers(8, 14))
    end_h = draw(st.integers(start_h + 1, 21))
    days = draw(st.lists(st.sampled_from(list(Weekday)), min_size=1, max_size=7, unique=True))
    # Around the 2026 DST changes (US Mar 8 / Nov 1, EU Mar 29 / Oct 25, AU Apr 5 / Oct 4).
    base = draw(st.sampled_from([datetime(2026, 3, 7), datetime(2026, 3, 28),
                                 datetime(2026, 10, 24), datetime(2026, 10, 31),
                                 datetime(2026, 4, 4), datetime(2026, 7, 1)]))
    now = base.replace(tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    return {
        "phones": [draw(st.sampled_from(formats(p))) for p in picks],
        "dnc": [draw(st.sampled_from(formats(p))) for p in picks if draw(st.booleans())],
        "zones": [draw(st.sampled_from(ZONES)) for _ in picks],
        "policy": draw(st.sampled_from(["contact", "number", "fixed"])),
        "window": {"start": time(start_h, draw(st.sampled_from([0, 30]))),
                   "end": time(end_h), "weekdays": [d.value for d in days]},
        "now": now,
        "hops": draw(st.lists(st.integers(60, 8 * 3600), min_size=1, max_size=10)),
    }


def allowed_reference(window: dict[str, object], zones: list[ZoneInfo], at: datetime) -> bool:
    start, end = window["start"], window["end"]
    assert isinstance(start, time) and isinstance(end, time)
    weekdays = window["weekdays"]
    assert isinstance(weekdays, list)
    names = [w.value for w in Weekday]
    for z in zones:
        local = at.astimezone(z)
        if names[local.weekday()] not in weekdays or not start <= local.time() < end:
            return False
    return bool(zones)


def zones_of(policy: str, contact_tz: str | None, e164: str) -> list[ZoneInfo]:
    if policy == "fixed":
        return [ZoneInfo("America/Chicago")]
    if policy == "contact" and contact_tz and contact_tz != "Not/AZone":
        return [ZoneInfo(contact_tz)]
    names = pn_tz.time_zones_for_number(phonenumbers.parse(e164))
    return [ZoneInfo(n) for n in names if n != "Etc/Unknown"]


async def run_scenario(sc: dict[str, object]) -> None:
    store = await Store.open(":memory:")
    try:
        policy = {"source": sc["policy"]}
        if sc["policy"] == "fixed":
            policy["fixed_zone"] = "America/Chicago"
        camp = make_campaign(calling_window=sc["window"], timezone_policy=policy,
                             pacing={"calls_per_minute": 600, "max_concurrent": 50})
        phones = sc["phones"]
        assert isinstance(phones, list)
        zones = sc["zones"]
        assert isinstance(zones, list)
        await seed(store, camp, [[p] for p in phones], timezones=zones)
        dnc = sc["dnc"]
        assert isinstance(dnc, list)
        dnc_e164 = set()
        for d in dnc:
            e164 = phonenumbers.format_number(phonenumbers.parse(d, "US"),
                                              phonenumbers.PhoneNumberFormat.E164)
            dnc_e164.add(e164)
            await add_dnc(store, e164)
        now = sc["now"]
        assert isinstance(now, datetime)
        clock = FakeClock(now)
        orig = FakeOriginator(clock)
        dialer = Dialer(store, orig, clock, max_concurrent_global=50)
        hops = sc["hops"]
        assert isinstance(hops, list)
        for hop in [0, *hops]:
            await clock.advance(hop)
            for _ in range(len(phones) + 1):
                await dialer.tick()
                await clock.advance(0.1)
        # Then jump exactly to the openings the gate announced: the boundaries themselves.
        for _ in range(3):
            row = await store.fetchone("SELECT MIN(next_eligible_at) AS t FROM contacts"
                                       " WHERE status = 'pending'")
            if row is None or row["t"] is None:
                break
            opens = datetime.fromisoformat(row["t"])
            await clock.advance(max(0.0, (opens - clock.now()).total_seconds()))
            for _ in range(len(phones) + 1):
                await dialer.tick()
                await clock.advance(0.1)
        tz_by_phone = {phonenumbers.format_number(phonenumbers.parse(p, "US"),
                                                  phonenumbers.PhoneNumberFormat.E164): z
                       for p, z in zip(phones, zones, strict=True)}
        for s in orig.sent:
            assert s.req.phone not in dnc_e164
            zs = zones_of(str(sc["policy"]), tz_by_phone[s.req.phone], s.req.phone)
            assert allowed_reference(sc["window"], zs, s.at), (s.req.phone, s.at)  # type: ignore[arg-type]
    finally:
        await store.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_never_outside_window_or_dnc(sc: dict[str, object]) -> None:
    asyncio.run(run_scenario(sc))
