"""The people and campaigns of the invariant property test: numbers in several zones
(some in two zones, one in all of them), the ways people write them, how each callee
behaves on the simulator, and what the voice session would report after an answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import phonenumbers
from hypothesis import strategies as st
from invariant_model import Model, e164

from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.campaigns.importer import import_records
from televox_pbx.clock import FakeClock
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import Disposition
from televox_pbx.sim import Scenario
from televox_pbx.sim.scenario import Behaviour, Callee
from televox_pbx.store import Store
from televox_pbx.store.campaigns import get_campaign, upsert_campaign

_AGENT = {"persona_name": "Ava", "business": "Acme", "goal": "book a demo",
          "opening_line": "Hi, I'm Ava, an AI assistant calling for Acme."}

# Two campaigns with different windows and zone policies; they share every number.
CAMPAIGNS: dict[str, dict[str, Any]] = {
    "north": {
        "name": "north", "agent": _AGENT, "caller_id": "+15550100000", "trunk": "trunk",
        "calling_window": {"start": "09:00", "end": "20:00",
                           "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat"]},
        "timezone_policy": {"source": "contact"},
        "pacing": {"calls_per_minute": 30, "max_concurrent": 2},
        "retry": {"retry_interval_minutes": 10, "max_attempts_per_phone": 2},
        "ring_timeout_s": 10, "amd": True},
    "south": {
        "name": "south", "agent": _AGENT, "caller_id": "+15550100001", "trunk": "trunk",
        "calling_window": {"start": "10:00", "end": "18:00",
                           "weekdays": ["mon", "tue", "wed", "thu", "fri"]},
        "timezone_policy": {"source": "number"},
        "pacing": {"calls_per_minute": 20, "max_concurrent": 2},
        "retry": {"retry_interval_minutes": 30, "max_attempts_per_phone": 3},
        "ring_timeout_s": 15, "amd": True},
}

NUMBERS = [
    "+12125550100",  # New York
    "+12125550101",  # New York
    "+13125550102",  # Chicago
    "+14155550103",  # Los Angeles
    "+12085550104",  # Boise or Los Angeles
    "+16055550105",  # Denver or North Dakota
    "+18085550106",  # Honolulu
    "+18005550107",  # toll free: any zone at all
    "+442079460018",  # London
]
DECLARED = [None, None, "own", "America/Los_Angeles", "America/New_York", "Europe/London",
            "Mars/Olympus"]

# name -> (the callee on the simulator, what the session reports once it hangs up)
CALLEES: dict[str, tuple[Callee, tuple[int | None, Disposition | None]]] = {
    "interested": (Callee(behaviour=Behaviour.ANSWER, ring_s=2, amd_delay_s=6),
                   (3, Disposition.INTERESTED)),
    "declines": (Callee(behaviour=Behaviour.ANSWER, ring_s=1, amd_delay_s=4),
                 (2, Disposition.NOT_INTERESTED)),
    "silent": (Callee(behaviour=Behaviour.ANSWER, ring_s=3, amd_delay_s=12), (0, None)),
    "voicemail": (Callee(behaviour=Behaviour.VOICEMAIL, ring_s=2, amd_delay_s=3), (0, None)),
    "busy": (Callee(behaviour=Behaviour.BUSY), (None, None)),
    "congested": (Callee(behaviour=Behaviour.UNAVAILABLE), (None, None)),
    "invalid": (Callee(behaviour=Behaviour.NOT_FOUND), (None, None)),
    "no_answer": (Callee(behaviour=Behaviour.RING_OUT), (None, None)),
    "no_listener": (Callee(behaviour=Behaviour.NO_LISTENER), (None, None)),
}



def scenario_for(kinds: dict[str, str]) -> Scenario:
    return Scenario(default=CALLEES["interested"][0], timer_b_s=5.0,
                    numbers={n: CALLEES[k][0] for n, k in kinds.items()})


def session_result(kind: str) -> tuple[int | None, Disposition | None]:
    return CALLEES[kind][1]


def written_forms(number: str) -> list[str]:
    """How people write the number: national with punctuation, with a trunk or
    international prefix, E.164 last (hypothesis starts from the first)."""
    num = phonenumbers.parse(number, None)
    if num.country_code == 1:
        d = str(num.national_number)
        return [f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}",
                f"1-{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]} {d[3:6]} {d[6:]}", number]
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return [intl, "011 " + intl.lstrip("+"), number]


def caller_id_forms(number: str) -> list[str]:
    """How a PBX in the US hands over an inbound caller ID."""
    num = phonenumbers.parse(number, None)
    if num.country_code == 1:
        return [number.lstrip("+"), str(num.national_number), number]
    return ["011" + number.lstrip("+"), number]


@dataclass(frozen=True)
class Row:
    phones: tuple[tuple[int, int], ...]  # (index in NUMBERS, index in its written forms)
    declared: int  # index in DECLARED


def contacts() -> st.SearchStrategy[list[Row]]:
    phone = st.tuples(st.integers(0, len(NUMBERS) - 1), st.integers(0, 4))
    row = st.builds(Row, st.lists(phone, min_size=1, max_size=2).map(tuple),
                    st.integers(0, len(DECLARED) - 1))
    return st.lists(row, min_size=1, max_size=3)


def _declared(choice: int, number: str) -> str | None:
    zone = DECLARED[choice]
    if zone == "own":
        return phonenumbers.timezone.time_zones_for_number(
            phonenumbers.parse(number, None))[0]
    return zone


async def import_into(store: Store, name: str, rows: list[Row], model: Model,
                      clock: FakeClock) -> None:
    """Import through the product's importer (as the CLI would), then start the campaign
    or, when it had finished, put it back to work. The model notes each phone's declared
    zone: the first contact to bring a number into a campaign keeps it."""
    campaign = Campaign.model_validate(CAMPAIGNS[name])
    cid = await upsert_campaign(store, campaign)
    records: list[dict[str, str]] = []
    for i, row in enumerate(rows):
        first = NUMBERS[row.phones[0][0]]
        zone = _declared(row.declared, first)
        rec = {"name": f"Lead {name} {i}", "timezone": zone or ""}
        for slot, (n, form) in enumerate(row.phones, start=1):
            forms = written_forms(NUMBERS[n])
            rec[f"phone{slot}"] = forms[form % len(forms)]
            model.declared.setdefault((name, e164(NUMBERS[n]) or NUMBERS[n]), zone)
        records.append(rec)
    explicit = {"name": "name", "timezone": "timezone", "phone1": "phone1", "phone2": "phone2"}
    await import_records(store, campaign, cid, records, source="test", actor="test",
                         explicit=explicit, now=clock.now())
    row = await get_campaign(store, name)
    assert row is not None
    if row.state == "IDLE":
        await apply(store, name, Action.START, clock.now())
    elif row.state == "COMPLETED":
        await apply(store, name, Action.REQUEUE, clock.now())
