"""Contact groups (issue 16 item 3): store, import, add/remove, campaign targeting, CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dialer_support import add_dnc, make_campaign

from televox_pbx.campaigns.controls import Action, ControlError, apply
from televox_pbx.campaigns.groups import add_member, import_into_group, remove_member
from televox_pbx.campaigns.importer import headers_of, rows_from_records
from televox_pbx.campaigns.mapping import build_mapping
from televox_pbx.cli import main
from televox_pbx.store import Store
from televox_pbx.store import groups as gs
from televox_pbx.store.campaigns import upsert_campaign

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
# The tests that take `store` run on SQLite and on the throw-away PostgreSQL.
pytestmark = pytest.mark.both_backends


async def _import(store: Store, group: str, records: list[dict[str, object]]) -> int:
    rows = rows_from_records(records)
    mapping = build_mapping(headers_of(rows), [r.values for r in rows], {},
                            default_country="US")
    summary = await import_into_group(store, group, rows, mapping, default_country="US",
                                      now=NOW)
    assert summary.balanced()
    return summary.added


async def _campaign_phones(store: Store, name: str) -> list[str]:
    rows = await store.fetchall(
        "SELECT p.e164 FROM contact_phones p JOIN campaigns c ON c.id = p.campaign_id"
        " WHERE c.name = ? ORDER BY p.e164", (name,))
    return [str(r[0]) for r in rows]


async def test_import_dedupes_by_e164_inside_each_group(store: Store) -> None:
    assert await _import(store, "vip", [{"phone": "(212) 555-0101", "name": "Ann"},
                                        {"phone": "+1 212 555 0101", "name": "Ann again"},
                                        {"phone": "212-555-0102", "name": "Bob"}]) == 2
    assert await _import(store, "vip", [{"phone": "2125550102"}]) == 0  # already there
    assert await _import(store, "other", [{"phone": "2125550102"}]) == 1  # per group
    gid = await gs.group_id(store, "vip")
    assert gid is not None
    assert await gs.group_phones(store, gid) == {"+12125550101", "+12125550102"}
    assert {g.name: g.members for g in await gs.list_groups(store)} == {"vip": 2, "other": 1}


async def test_remove_leaves_campaign_contacts(store: Store) -> None:
    await _import(store, "vip", [{"phone": "2125550101"}, {"phone": "2125550102"}])
    campaign = make_campaign(groups=["vip"])
    await upsert_campaign(store, campaign)
    await apply(store, "spring", Action.START, NOW)
    assert await remove_member(store, "vip", "(212) 555-0101")
    assert not await remove_member(store, "vip", "(212) 555-0101")
    gid = await gs.group_id(store, "vip")
    assert gid is not None
    assert await gs.group_phones(store, gid) == {"+12125550102"}
    assert await _campaign_phones(store, "spring") == ["+12125550101", "+12125550102"]


async def test_start_resolves_members_and_later_additions_join(store: Store) -> None:
    await _import(store, "vip", [{"phone": "2125550101", "name": "Ann", "plan": "gold"}])
    await _import(store, "b", [{"phone": "2125550101"}, {"phone": "2125550103"},
                               {"phone": "2125550104"}])
    await add_dnc(store, "+12125550104")
    await upsert_campaign(store, make_campaign(groups=["vip", "b"]))
    await upsert_campaign(store, make_campaign(name="idle", groups=["vip"]))
    assert await _campaign_phones(store, "spring") == []  # nothing before the start
    await apply(store, "spring", Action.START, NOW)
    # One contact per person (the number in both groups once); the DNC number skipped.
    assert await _campaign_phones(store, "spring") == ["+12125550101", "+12125550103"]
    row = await store.fetchone("SELECT name, variables_json, source FROM contacts"
                               " WHERE name = 'Ann'")
    assert row is not None and row["source"] == "group" and "gold" in row["variables_json"]
    # Starting again (pause/resume) adds nobody twice.
    await apply(store, "spring", Action.PAUSE, NOW)
    await apply(store, "spring", Action.RESUME, NOW)
    assert len(await _campaign_phones(store, "spring")) == 2
    # A later addition joins the started campaign, not the idle one.
    summary = await add_member(store, "vip", {"phone": "212 555 0105"}, now=NOW)
    assert summary.added == 1
    assert "+12125550105" in await _campaign_phones(store, "spring")
    assert await _campaign_phones(store, "idle") == []


async def test_listing_paging_and_deleting_a_group(store: Store) -> None:
    await _import(store, "vip", [{"phone": f"21255501{i:02d}", "name": f"P{i}"}
                                 for i in range(3)])
    await gs.ensure_group(store, "vip")  # already there: the same group
    await gs.ensure_group(store, "empty")
    assert [(g.name, g.members) for g in await gs.list_groups(store)] == [("empty", 0),
                                                                          ("vip", 3)]
    gid = await gs.group_id(store, "vip")
    assert gid is not None
    every = await gs.member_numbers(store, gid)
    assert every == [(f"+121255501{i:02d}", f"P{i}") for i in range(3)]
    assert await gs.member_numbers(store, gid, limit=1, offset=1) == every[1:2]
    assert await gs.delete_group(store, "vip") and not await gs.delete_group(store, "vip")
    assert [g.name for g in await gs.list_groups(store)] == ["empty"]


async def test_unknown_group_refuses_the_start(store: Store) -> None:
    await upsert_campaign(store, make_campaign(groups=["nope"]))
    with pytest.raises(ControlError, match="nope"):
        await apply(store, "spring", Action.START, NOW)
    row = await store.fetchone("SELECT state FROM campaigns WHERE name = 'spring'")
    assert row is not None and row["state"] == "IDLE"


def test_groups_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "televox.yaml"
    db = tmp_path / "t.db"
    settings.write_text(f"database: {{path: {db}}}\n")
    csv = tmp_path / "people.csv"
    csv.write_text("Name,Mobile\nAnn,(212) 555-0101\nBob,212-555-0102\nDup,2125550101\n")

    def cli(*argv: str) -> int:
        return main(["-c", str(settings), "groups", *argv])

    assert cli("import", "vip", str(csv), "--map", "Mobile=phone") == 0
    assert cli("add", "vip", "212 555 0103", "--name", "Cy", "--var", "plan=gold") == 0
    assert cli("add", "vip", "2125550103") == 1  # duplicate inside the group
    assert cli("remove", "vip", "2125550102") == 0
    capsys.readouterr()
    assert cli("members", "vip") == 0
    out = capsys.readouterr().out
    assert "+12125550101\tAnn" in out and "+12125550103\tCy" in out
    assert "+12125550102" not in out
    assert cli("list") == 0
    assert "vip\t2" in capsys.readouterr().out
    assert cli("delete", "vip") == 0 and cli("members", "vip") == 1

    async def count() -> int:
        s = await Store.open(db)
        try:
            row = await s.fetchone("SELECT COUNT(*) FROM group_members")
            return int(row[0]) if row else -1
        finally:
            await s.close()
    assert asyncio.run(count()) == 0
