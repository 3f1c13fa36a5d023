"""SMS pieces with no PBX: one segment, the template check, the keywords (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sms_support import Texts, sms_campaign

from televox_pbx.clock import FakeClock
from televox_pbx.config.loader import load_campaigns
from televox_pbx.sms.keywords import Keyword, classify
from televox_pbx.sms.segments import (
    SegmentError,
    check_template,
    fit,
    measure,
    render_one_segment,
)
from televox_pbx.sms.service import SmsService
from televox_pbx.store import Store


def test_one_segment_is_160_gsm7_or_70_ucs2() -> None:
    assert measure("a" * 160).fits and not measure("a" * 161).fits
    assert measure("€" * 80).units == 160 and measure("€" * 80).encoding == "GSM-7"
    assert not measure("[" * 81).fits  # extension characters take two septets
    assert measure("é" * 160).fits  # é is in the GSM-7 basic set
    assert measure("ł" * 70).encoding == "UCS-2" and measure("ł" * 70).fits
    assert not measure("ł" + "a" * 70).fits
    assert not measure("😀" * 36).fits  # two UTF-16 units each


def test_a_long_rendering_names_the_contact_row() -> None:
    tpl = "Hi {{NAME}}, see you soon."
    assert render_one_segment(tpl, {"name": "Ann"}, "row 3") == "Hi Ann, see you soon."
    with pytest.raises(SegmentError, match=r"row 7: the message is 1\d\d GSM-7"):
        render_one_segment(tpl, {"name": "A" * 150}, "row 7")
    with pytest.raises(SegmentError, match=r"row 8: .*UCS-2.*70"):
        render_one_segment(tpl, {"name": "Łukasz " * 9}, "row 8")


def test_template_check() -> None:
    assert check_template("Hi {{NAME}}") is None
    assert "malformed" in (check_template("Hi {{NAME}") or "")
    assert "malformed" in (check_template("Hi {{first name}}") or "")
    assert "161 GSM-7" in (check_template("x" * 161) or "")


def test_fit_cuts_a_reply_to_one_segment() -> None:
    long = "We are open from nine to five. " * 8
    out = fit(long)
    assert measure(out).fits and out.endswith(".")
    assert fit("short reply") == "short reply"


@pytest.mark.parametrize("body", ["STOP", "stop", " Stop. ", "STOPALL", "unsubscribe",
                                  "Cancel", "END", "quit!"])
def test_stop_words_alone(body: str) -> None:
    assert classify(body) is Keyword.STOP


@pytest.mark.parametrize("body", ["please stop calling", "stop it", "the end is near", ""])
def test_not_a_keyword_unless_alone(body: str) -> None:
    assert classify(body) is Keyword.NONE


def test_start_words() -> None:
    assert classify("start") is Keyword.START and classify("UNSTOP") is Keyword.START


def test_campaign_config() -> None:
    assert sms_campaign().channel == "sms"
    with pytest.raises(ValidationError, match="needs an sms: section"):
        sms_campaign(sms=None)
    with pytest.raises(ValidationError, match="malformed"):
        sms_campaign(sms={"message": "Hi {{NAME"})


def test_televox_check_reports_the_line(tmp_path: Path) -> None:
    (tmp_path / "promo.yaml").write_text(
        "name: promo\nchannel: sms\ncaller_id: '+15550100000'\ntrunk: trunk\n"
        "agent:\n  persona_name: Ava\n  business: Acme\n  goal: book\n"
        "  opening_line: Hi, I'm Ava, an AI assistant.\n"
        f"sms:\n  message: \"{'x' * 170} {{{{NAME}}}}\"\n")
    good, issues = load_campaigns(tmp_path)
    assert not good
    assert any(i.line == 11 and "sms.message" in str(i) and "176 GSM-7" in str(i)
               for i in issues), [str(i) for i in issues]


async def test_texts_go_only_from_numbers_that_may_send_sms(tmp_path: Path) -> None:
    """Settings that list numbers allow texts only from those marked `sms: true`: from
    another caller ID nothing is handed to the PBX and the attempt ends with the reason."""
    store = await Store.open(tmp_path / "t.db")
    clock = FakeClock(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))  # a Tuesday, 10:00 in NY
    try:
        texts = Texts()
        campaign = sms_campaign()  # caller_id +15550100000
        barred = SmsService(store, texts, clock, sms_from=frozenset({"+15550100999"}))
        refused = await barred.send_single(campaign, None, "+12125550123", "hello")
        assert (refused.ok, refused.code) == (False, "sender")
        assert "not one of the numbers that may send SMS" in refused.reason
        assert texts.sent == []
        allowed = SmsService(store, texts, clock, sms_from=frozenset({"+15550100000"}))
        sent = await allowed.send_single(campaign, None, "+12125550124", "hello")
        assert sent.ok and [t[2] for t in texts.sent] == ["+15550100000"]
    finally:
        await store.close()


def test_televox_check_wants_an_sms_number_for_an_sms_campaign(tmp_path: Path) -> None:
    from televox_pbx.cli.check import caller_id_checks
    from televox_pbx.config.settings import Settings

    settings = Settings.model_validate({"numbers": [
        {"number": "+15550100000"}, {"number": "+15550100001", "sms": True}]})
    [check] = caller_id_checks(settings)
    issues = check(tmp_path / "promo.yaml", None,
                   {"channel": "sms", "caller_id": "+15550100000"})
    assert [i.field for i in issues] == ["caller_id"]
    assert "not one of the numbers that may send SMS (sms: true) (settings numbers: " \
           "+15550100001)" in str(issues[0])
    assert check(tmp_path / "promo.yaml", None,
                 {"channel": "sms", "caller_id": "+15550100001"}) == []
    assert check(tmp_path / "call.yaml", None, {"caller_id": "+15550100000"}) == []
