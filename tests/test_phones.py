"""Phone normalisation: documented accept/reject rules and fast path == phonenumbers."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from televox_pbx.campaigns.importer import ImportSummary, RowPlanner
from televox_pbx.campaigns.mapping import SourceRow, build_mapping
from televox_pbx.campaigns.phones import (
    NANP_REGIONS,
    fast_e164,
    fast_nanp,
    looks_like_phone,
    normalize_phone,
    slow_normalize,
)


@pytest.mark.parametrize(("raw", "country", "e164"), [
    ("(555) 019-8000", "US", "+15550198000"),  # fictional 555-01XX must still normalise
    ("555-019-8000", "US", "+15550198000"),
    ("1 555 019 8000", "US", "+15550198000"),
    ("+1 (555) 019-8000", "GB", "+15550198000"),
    ("  +15550198000 ", "US", "+15550198000"),
    ("'+15550198000", "US", "+15550198000"),  # our own safe export's apostrophe
    ("020 7946 0000", "GB", "+442079460000"),
    ("+44 20 7946 0000", "US", "+442079460000"),
    ("030 901820", "DE", "+4930901820"),
    ("(202) 555-0100", "CA", "+12025550100"),
])
def test_normalises(raw: str, country: str, e164: str) -> None:
    assert normalize_phone(raw, country).e164 == e164


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    ("hello", "not a phone number"),
    ("555-0198", "local number"),  # needs an area code
    ("12", "too short"),
    ("0123456789", "not a number pattern"),  # US area codes never start with 0
    ("+1 202 555 0100 ext 5", "extension"),
    ("+999 1234 5678", "not a phone number"),
    ("2025550100123456789", "not a phone number"),
])
def test_rejects_with_reason(raw: str, reason: str) -> None:
    res = normalize_phone(raw, "US")
    assert res.e164 is None and not res.ok
    assert res.error is not None and reason in res.error


def _reference(raw: str, region: str) -> str | None:
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


_digits = st.text("0123456789", min_size=10, max_size=10)
_shapes = st.sampled_from(["{d}", "1{d}", "+1{d}", "({a}) {b}-{c}", "1-{a}-{b}-{c}",
                           "+1 {a}.{b}.{c}", "{a} {b} {c}", "+1 ({a}) {b} {c}", "1{a}.{b}.{c}",
                           "+{d}", "+1-{a}-{b}-{c}", "({a}){b}{c}"])
_regions = st.sampled_from([*sorted(NANP_REGIONS), "GB", "DE", "FR", "IN", "BR"])


@settings(max_examples=600, deadline=None)
@given(d=_digits, shape=_shapes, region=_regions)
def test_fast_paths_equal_phonenumbers(d: str, shape: str, region: str) -> None:
    raw = shape.format(d=d, a=d[:3], b=d[3:6], c=d[6:])
    fast = fast_e164(raw, region)
    if fast is not None:
        assert fast == _reference(raw, region)
        assert slow_normalize(raw, region).e164 == fast
    if region in NANP_REGIONS:
        cell = fast_nanp(raw)
        if cell is not None:
            assert cell == _reference(raw, region) == slow_normalize(raw, region).e164


@settings(max_examples=400, deadline=None)
@given(raw=st.text("0123456789+()-. x", max_size=20), region=_regions)
def test_fast_paths_never_disagree_on_noise(raw: str, region: str) -> None:
    fast = fast_e164(raw, region)
    if fast is not None:
        assert fast == _reference(raw, region)
    if region in NANP_REGIONS and fast_nanp(raw) is not None:
        assert fast_nanp(raw) == _reference(raw, region)
    # And the public function never raises, whatever the input.
    normalize_phone(raw, region)


@settings(max_examples=200, deadline=None)
@given(raw=st.text(max_size=40))
def test_normalize_never_raises(raw: str) -> None:
    res = normalize_phone(raw, "US")
    assert (res.e164 is None) != (res.error is None)
    if res.e164 is not None:
        assert res.e164.startswith("+") and res.e164[1:].isdigit()


def test_looks_like_phone() -> None:
    assert looks_like_phone("(202) 555-0100")
    assert looks_like_phone("+44 20 7946 0000")
    assert not looks_like_phone("C-0000123")
    assert not looks_like_phone("12345")
    assert not looks_like_phone("jane@example.com")


@settings(max_examples=300, deadline=None)
@given(d=_digits, shape=_shapes, region=_regions)
def test_importer_inline_fast_path_equals_phonenumbers(d: str, shape: str, region: str) -> None:
    raw = shape.format(d=d, a=d[:3], b=d[3:6], c=d[6:])
    planner = RowPlanner(build_mapping(["phone"]), region, (), set(), ImportSummary())
    contact = planner.plan(SourceRow(1, {"phone": raw}))
    expected = slow_normalize(raw, region).e164
    assert (contact.phones[0] if contact is not None else None) == expected
