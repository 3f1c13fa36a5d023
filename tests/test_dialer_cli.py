"""`televox campaign ...` and `televox plan ...` against a real store file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from dialer_support import add_dnc, make_campaign, seed

from televox_pbx.cli import main
from televox_pbx.store import Store

CAMPAIGN_YAML = """\
name: spring
agent:
  persona_name: Ava
  business: Acme
  goal: book a demo
  opening_line: "Hi, I'm Ava, an AI assistant calling for Acme."
caller_id: "+15550100000"
trunk: trunk
calling_window: {start: "08:00", end: "21:00",
                 weekdays: [mon, tue, wed, thu, fri, sat, sun]}
timezone_policy: {source: fixed, fixed_zone: America/New_York}
pacing: {calls_per_minute: 2, max_concurrent: 2}
"""


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spring.yaml").write_text(CAMPAIGN_YAML)
    db = tmp_path / "t.db"
    settings = tmp_path / "televox.yaml"
    settings.write_text(f"database: {{path: {db}}}\ncampaigns_dir: {tmp_path / 'campaigns'}\n")

    async def prepare() -> None:
        store = await Store.open(db)
        await seed(store, make_campaign(), [["+12125550100"], ["+12125550101"],
                                            ["+12125550102"]], state="IDLE")
        await add_dnc(store, "+12125550101")
        await store.close()
    asyncio.run(prepare())
    return settings, db


def cli(settings: Path, *argv: str) -> int:
    return main(["-c", str(settings), *argv])


def test_start_pause_resume_status(env: tuple[Path, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = env
    assert cli(settings, "campaign", "start", "spring") == 0
    assert "spring: RUNNING" in capsys.readouterr().out
    assert cli(settings, "campaign", "resume", "spring") == 1
    assert "cannot resume" in capsys.readouterr().err
    assert cli(settings, "campaign", "pause", "spring") == 0
    assert cli(settings, "campaign", "resume", "spring") == 0
    assert cli(settings, "campaign", "status", "spring") == 0
    out = capsys.readouterr().out
    assert "pending" in out and "calls made 0" in out and "0/3" in out


def test_schedule_needs_an_offset(env: tuple[Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = env
    with pytest.raises(SystemExit):
        cli(settings, "campaign", "schedule", "spring", "2030-01-01T09:00")
    assert cli(settings, "campaign", "schedule", "spring", "2030-01-01T09:00:00-05:00") == 0
    assert "SCHEDULED at 2030-01-01T14:00:00+00:00" in capsys.readouterr().out


def test_plan_lists_dial_and_suppressed_without_calling(
        env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    settings, db = env
    assert cli(settings, "campaign", "start", "spring") == 0
    capsys.readouterr()
    assert cli(settings, "plan", "spring", "--hours", "24") == 0
    out = capsys.readouterr().out
    assert "suppressed: 1" in out and "on the DNC list" in out
    assert "would dial: 2" in out or "held by the calling window: 2" in out

    async def attempts() -> int:
        store = await Store.open(db)
        row = await store.fetchone("SELECT COUNT(*) AS n FROM call_attempts")
        await store.close()
        return int(row["n"]) if row else -1
    assert asyncio.run(attempts()) == 0


def test_unknown_campaign(env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = env
    assert cli(settings, "campaign", "status", "nope") == 1
    assert cli(settings, "plan", "nope") == 1
