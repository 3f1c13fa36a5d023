"""Admission control: the voice capacity caps live conversations across every campaign and
call-now (dialer, FakeClock and a fake PBX); the setting is checked against the cores."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dialer_support import FakeOriginator, make_campaign, seed

from televox_pbx.campaigns.controls import Action, apply
from televox_pbx.campaigns.dialer import Dialer
from televox_pbx.cli import main
from televox_pbx.clock import FakeClock
from televox_pbx.config.capacity import campaign_warning, core_limit, effective
from televox_pbx.config.settings import CapacitySettings
from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.store import Store
from televox_pbx.store.attempts import record_inbound

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
WINDOW = {"start": "08:00", "end": "21:00",
          "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def campaign(name: str, max_concurrent: int, per_minute: int = 60) -> object:
    return make_campaign(
        name=name, calling_window=WINDOW,
        timezone_policy={"source": "fixed", "fixed_zone": "America/New_York"},
        pacing={"calls_per_minute": per_minute, "max_concurrent": max_concurrent})


async def two_campaigns(store: Store) -> None:
    for n, (name, limit) in enumerate((("one", 5), ("two", 3))):
        await seed(store, campaign(name, limit), [[f"+1212555{n}{i:03d}"] for i in range(8)])


# --- the setting against the box --------------------------------------------------------

def test_unset_capacity_follows_the_cores() -> None:
    got = effective(CapacitySettings(), cores=2)
    assert (got.conversations, got.core_limit, got.warning) == (2, 2, None)
    assert effective(CapacitySettings(per_core=1.5), cores=2).conversations == 3
    assert core_limit(CapacitySettings(per_core=1.0), 4) == 4
    assert effective(CapacitySettings(per_core=0.25), cores=2).conversations == 1  # never 0


def test_capacity_above_the_cores_is_capped_with_a_warning() -> None:
    got = effective(CapacitySettings(conversations=8), cores=2)
    assert got.conversations == 2
    assert got.warning is not None and "capped at 2" in got.warning


def test_enforce_off_keeps_the_setting_but_warns() -> None:
    got = effective(CapacitySettings(conversations=8, enforce=False), cores=2)
    assert got.conversations == 8 and got.warning is not None


def test_capacity_within_the_cores_is_kept() -> None:
    got = effective(CapacitySettings(conversations=2), cores=2)
    assert (got.conversations, got.warning) == (2, None)


def test_campaign_warning_only_above_capacity() -> None:
    assert campaign_warning("a", 3, 3) is None
    text = campaign_warning("a", 5, 3)
    assert text is not None and "capped at 3" in text


# --- the dialer keeps it ------------------------------------------------------------------

async def test_campaigns_together_never_pass_the_capacity(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakeOriginator(clock)
    await two_campaigns(store)
    dialer = Dialer(store, pbx, clock, max_concurrent_global=50, capacity=3)
    for _ in range(30):
        await dialer.tick()
        await clock.advance(1)
    assert len(pbx.sent) == 3  # nobody hangs up: three live, and no fourth call


async def test_a_line_freed_is_used_again(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakeOriginator(clock)
    await two_campaigns(store)
    dialer = Dialer(store, pbx, clock, capacity=2)
    await dialer.tick()
    await clock.advance(1)
    await dialer.tick()
    assert len(pbx.sent) == 2
    first = pbx.sent[0].req.call_id
    await dialer.on_outcome(CallOutcome(first, CallStatus.NO_ANSWER, originated_at=START,
                                        hangup_at=START + timedelta(seconds=30)))
    for _ in range(3):
        await clock.advance(1)
        await dialer.tick()
    assert len(pbx.sent) == 3


async def test_run_now_is_capped_by_the_capacity(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakeOriginator(clock)
    await seed(store, campaign("one", 5, per_minute=1), [[f"+12125550{i:03d}"]
                                                         for i in range(8)])
    dialer = Dialer(store, pbx, clock, capacity=2)
    await apply(store, "one", Action.RUN_NOW, clock.now())
    await dialer.tick()
    assert len(pbx.sent) == 2


async def test_conversations_elsewhere_count(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakeOriginator(clock)
    await two_campaigns(store)
    inbound = [2]
    dialer = Dialer(store, pbx, clock, capacity=3, live_elsewhere=lambda: inbound[0])
    for _ in range(5):
        await dialer.tick()
        await clock.advance(1)
    assert len(pbx.sent) == 1
    inbound[0] = 0
    for _ in range(5):
        await dialer.tick()
        await clock.advance(1)
    assert len(pbx.sent) == 3


async def test_call_now_at_capacity_is_refused_with_its_code(store: Store) -> None:
    clock = FakeClock(START)
    pbx = FakeOriginator(clock)
    await two_campaigns(store)
    dialer = Dialer(store, pbx, clock, capacity=1)
    await dialer.tick()
    assert len(pbx.sent) == 1
    row = await store.fetchone("SELECT id FROM contacts WHERE status = 'pending'"
                               " ORDER BY id DESC LIMIT 1")
    assert row is not None
    result = await dialer.call_now(int(row["id"]))
    assert (result.call_id, result.code) == (None, "capacity")
    assert "at capacity" in result.reason
    assert len(pbx.sent) == 1  # refused, not queued
    await dialer.on_outcome(CallOutcome(pbx.sent[0].req.call_id, CallStatus.NO_ANSWER,
                                        originated_at=START, hangup_at=START))
    result = await dialer.call_now(int(row["id"]))
    assert result.code == "originated" and len(pbx.sent) == 2


# --- televox check ------------------------------------------------------------------------

def test_check_warns_of_a_campaign_above_the_capacity(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config"
    (config / "campaigns").mkdir(parents=True)
    (config / "televox.yaml").write_text("capacity: {conversations: 2}\n", encoding="utf-8")
    shipped = Path(__file__).resolve().parents[1] / "config" / "campaigns"
    for name in ("survey.yaml", "dental.yaml"):  # max_concurrent 4 and 2
        shutil.copy(shipped / name, config / "campaigns" / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("televox_pbx.config.capacity.machine_cores", lambda: 2)
    assert main(["check", "config"]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    assert "capacity: 2 live conversation(s) at once (2 core(s) serve 2)" in out
    assert "campaign 'survey': pacing.max_concurrent 4 is above the voice capacity 2" in out
    assert "'dental'" not in out


def test_plan_warns_of_a_campaign_above_the_capacity(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    (tmp_path / "campaigns").mkdir()
    db = tmp_path / "t.db"
    settings = tmp_path / "televox.yaml"
    settings.write_text(f"database: {{path: {db}}}\ncampaigns_dir: {tmp_path / 'campaigns'}\n"
                        "capacity: {conversations: 1}\n")

    async def prepare() -> None:
        store = await Store.open(db)
        await seed(store, campaign("wide", 4), [["+12125550100"]], state="RUNNING")
        await store.close()
    asyncio.run(prepare())
    monkeypatch.setattr("televox_pbx.config.capacity.machine_cores", lambda: 2)
    assert main(["-c", str(settings), "plan", "wide"]) == 0
    out = capsys.readouterr().out
    assert "campaign 'wide': pacing.max_concurrent 4 is above the voice capacity 1" in out


async def test_an_inbound_conversation_takes_one_place_not_two(store: Store) -> None:
    """An inbound call is both an attempt row (live, so its number is not dialled) and a
    conversation the inbound handler counts: the voice capacity counts it once."""
    clock = FakeClock(START)
    pbx = FakeOriginator(clock)
    await two_campaigns(store)
    assert await record_inbound(store, "in-1", "+13125550199", START)
    dialer = Dialer(store, pbx, clock, capacity=3, live_elsewhere=lambda: 1)
    for _ in range(5):
        await dialer.tick()
        await clock.advance(1)
    assert len(pbx.sent) == 2
