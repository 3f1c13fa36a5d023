"""DNC service and CLI: add/remove/import/export round trip, audit with who and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from televox_pbx.campaigns.dnc import DncService, is_on_dnc, read_dnc_file
from televox_pbx.cli import main
from televox_pbx.clock import FakeClock
from televox_pbx.store import Store

pytestmark = pytest.mark.both_backends  # each store test on SQLite and on PostgreSQL


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    yield s
    await s.close()


def _svc(store: Store, workspace: str = "default") -> DncService:
    return DncService(store, workspace, "US", FakeClock(datetime(2026, 1, 5, 15, tzinfo=UTC)))


async def test_add_normalises_dedupes_and_audits(store: Store) -> None:
    svc = _svc(store)
    r = await svc.add(["(202) 555-0100", "+1 202 555 0100", "2025550101", "12"],
                      reason="asked on call", source="agent", actor="ava")
    assert r.changed == ["+12025550100", "+12025550101"]
    assert r.invalid == [(4, "12", "too short")]
    assert await is_on_dnc(store, "+12025550100", "default")
    assert await svc.contains("202.555.0101")
    assert not await svc.contains("2025550102") and not await svc.contains("junk")
    again = await svc.add(["2025550100"], reason="again", actor="bo")
    assert again.changed == [] and again.unchanged == ["+12025550100"]
    audit = await svc.audit()
    assert [(a.action, a.e164, a.actor, a.source, a.reason, a.at) for a in audit] == [
        ("add", "+12025550101", "ava", "agent", "asked on call", "2026-01-05T15:00:00.000Z"),
        ("add", "+12025550100", "ava", "agent", "asked on call", "2026-01-05T15:00:00.000Z")]
    entries = await svc.entries()
    assert {e.e164 for e in entries} == {"+12025550100", "+12025550101"}
    assert entries[0].added_by == "ava" and entries[0].reason == "asked on call"


async def test_remove_is_audited_and_idempotent(store: Store) -> None:
    svc = _svc(store)
    await svc.add(["2025550100"], reason="r", actor="a")
    r = await svc.remove(["+12025550100", "2025550109"], reason="added by mistake", actor="b")
    assert r.changed == ["+12025550100"] and r.unchanged == ["+12025550109"]
    assert not await svc.contains("2025550100")
    history = await svc.audit("202-555-0100")
    assert [(a.action, a.actor, a.reason) for a in history] == [
        ("remove", "b", "added by mistake"), ("add", "a", "r")]
    assert await svc.audit("junk") == []
    assert await svc.count() == 0


async def test_workspaces_are_separate(store: Store) -> None:
    await _svc(store, "acme").add(["2025550100"])
    assert await is_on_dnc(store, "+12025550100", "acme")
    assert not await is_on_dnc(store, "+12025550100", "default")


async def test_export_import_round_trip(store: Store, tmp_path: Path) -> None:
    svc = _svc(store)
    await svc.add(["2025550100"], reason="=cmd|' /C calc'!A0", actor="a")
    await svc.add(["+44 20 7946 0000"], reason="complaint", actor="a")
    path = tmp_path / "dnc.csv"
    assert await svc.export_csv(path) == 2
    text = path.read_text("utf-8-sig")
    assert "'=cmd" in text and "'+12025550100" in text  # formula-safe export
    other = await Store.open(tmp_path / "other.db")
    try:
        svc2 = _svc(other)
        r = await svc2.import_csv(path, actor="importer")
        assert sorted(r.changed) == ["+12025550100", "+442079460000"]
        entries = {e.e164: e for e in await svc2.entries()}
        assert entries["+442079460000"].reason == "complaint"
        assert entries["+12025550100"].source == "import"
        assert [a.actor for a in await svc2.audit()] == ["importer", "importer"]
    finally:
        await other.close()


def test_read_dnc_file_shapes(tmp_path: Path) -> None:
    bare = tmp_path / "bare.csv"
    bare.write_text("2025550100\n(202) 555-0101\n\nnope\n")
    assert read_dnc_file(bare, "list") == [("2025550100", "list", None),
                                          ("(202) 555-0101", "list", None),
                                          ("nope", "list", None)]
    headed = tmp_path / "headed.csv"
    headed.write_text("Phone Number;Reason;Name\n2025550100;asked;Ann\n2025550101;;Bo\n")
    assert read_dnc_file(headed, "default") == [("2025550100", "asked", None),
                                                ("2025550101", "default", None)]
    nophone = tmp_path / "nophone.csv"
    nophone.write_text("name,city\nAnn,Paris\n")
    assert read_dnc_file(nophone) == [("", "", "no phone column")]


async def test_import_reports_invalid_rows(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('phone,reason\n2025550100,a\n"broken,b\nnot a number,c\n')
    r = await _svc(store).import_csv(path)
    assert r.changed == ["+12025550100"]
    assert [(i, why) for i, _, why in r.invalid] == [
        (2, "unbalanced quote"), (3, "not a phone number (no digits)")]


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "t.db"
    settings = tmp_path / "televox.yaml"
    settings.write_text(f"database: {{path: {db}}}\n")
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")

    def cli(*argv: str) -> int:
        return main(["-c", str(settings), "dnc", *argv])

    assert cli("add", "+1 (202) 555-0100", "020 7946 0000", "12", "--country", "GB",
               "--reason", "asked", "--actor", "dave") == 0
    captured = capsys.readouterr()
    assert "added 2; already listed 0; invalid 1" in captured.out
    assert "item 3: '12': too short" in captured.err
    assert cli("add", "2025550101", "--reason", "web form", "--source", "webhook") == 0
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert "+442079460000" in out and "+12025550101" in out and "carol\twebhook" in out
    assert cli("remove", "+44 20 7946 0000", "--reason", "mistake") == 0
    export = tmp_path / "out.csv"
    assert cli("export", str(export)) == 0
    assert "wrote 2 number(s)" in capsys.readouterr().out
    assert cli("import", str(export), "--workspace", "other") == 0
    assert cli("list", "--workspace", "other") == 0
    assert "+12025550101" in capsys.readouterr().out
    assert cli("audit") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split("\t")[1:4] == ["remove", "+442079460000", "carol"]
    assert cli("add", "nope") == 1
    assert cli("import", str(tmp_path / "missing.csv")) == 1

    async def check() -> bool:
        s = await Store.open(db)
        try:
            return await is_on_dnc(s, "+12025550101", "default")
        finally:
            await s.close()
    assert asyncio.run(check())
