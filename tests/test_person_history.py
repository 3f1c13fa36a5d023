"""`televox contacts show NUMBER`: one history per person, inbound and outbound, across
campaigns and agents, newest first; a campaign naming an agent file keeps it in the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from knowledge_support import REPO

from televox_pbx.cli import main
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.loader import load_campaign
from televox_pbx.store import Store
from televox_pbx.store.attempts import record_inbound
from televox_pbx.store.campaigns import get_campaign, upsert_campaign
from televox_pbx.store.person_history import record_inbound_route

PHONE = "+12125550199"


async def _fill(db: Path) -> None:
    store = await Store.open(db)
    try:
        recall = load_campaign(REPO / "config" / "campaigns" / "recall.yaml")
        dental = load_campaign(REPO / "config" / "campaigns" / "dental.yaml")
        for n, (campaign, disposition, at) in enumerate(
                [(recall, "INTERESTED", "2026-03-02T15:00:00.000Z"),
                 (dental, "CALLBACK", "2026-03-01T15:00:00.000Z")]):
            cid = await upsert_campaign(store, campaign)
            await store.execute(
                "INSERT INTO call_attempts(id, campaign_id, phone, status, disposition,"
                " duration_s, turns, created_at) VALUES (?, ?, ?, 'completed', ?, 42, 6, ?)",
                (f"out-{n}-0000", cid, PHONE, disposition, at))
        await store.execute(  # someone else's call stays out
            "INSERT INTO call_attempts(id, phone, status) VALUES ('other', '+12125550100',"
            " 'completed')")
        await record_inbound(store, "in-00000", PHONE, datetime(2026, 3, 3, 9, tzinfo=UTC))
        await record_inbound_route(store, "in-00000", "+15550100200", "front-desk")
        stored = await get_campaign(store, "recall")
        assert stored is not None and (config := stored.config()) is not None
        assert isinstance(config, Campaign) and config.agent.profile is not None
        assert config.agent.profile.tools[0].name == "find_slots"
    finally:
        await store.close()


def test_contacts_show_lists_every_call_newest_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    asyncio.run(_fill(db))
    assert main(["contacts", "show", "(212) 555-0199", "--db", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{PHONE}: 3 call(s)"
    assert out[1].startswith("2026-03-03 09:00  inbound  to +15550100200, agent front-desk: ")
    assert out[1].endswith("(televox calls show in-00000)")
    assert out[2].startswith("2026-03-02 15:00  outbound campaign recall, agent front-desk: "
                             "completed, INTERESTED, 42s, 6 turns")
    assert out[3].startswith("2026-03-01 15:00  outbound campaign dental, agent (inline) Ava: "
                             "completed, CALLBACK")
    assert main(["contacts", "show", "not a number", "--db", str(db)]) == 1
