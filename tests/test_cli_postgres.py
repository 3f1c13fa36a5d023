"""The commands that open the store use the settings' database, PostgreSQL included, and take
a postgresql:// URL as --db (the throw-away PostgreSQL; never skipped)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pg_support import PgServer, fresh_database

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
"""


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    async def go() -> list[tuple[object, ...]]:
        s = await Store.open(url)
        try:
            return [tuple(r) for r in await s.fetchall(sql)]
        finally:
            await s.close()
    return asyncio.run(go())


def test_store_commands_run_on_postgresql(pg_server: PgServer, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = fresh_database(pg_server, migrated=True)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spring.yaml").write_text(CAMPAIGN_YAML)
    cfg = tmp_path / "televox.yaml"
    cfg.write_text(f'database:\n  url: "{url}"\ncampaigns_dir: {tmp_path / "campaigns"}\n')
    contacts = tmp_path / "c.csv"
    contacts.write_text("Name,Phone\nAnn,2025550100\nBo,2025550101\n")

    def cli(*argv: str) -> str:
        assert main(["-c", str(cfg), *argv]) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    assert "added 2 contact(s)" in cli("campaign", "import", "spring", str(contacts))
    assert "spring: RUNNING" in cli("campaign", "start", "spring")
    assert "0/2" in cli("campaign", "status", "spring")
    cli("dnc", "add", "+12025550101", "--country", "US")
    assert "+12025550101" in cli("dnc", "list")
    _rows(url, "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, phone_position,"
               " retry_pass, status, created_at) VALUES ('call-1', 1, 1, '+12025550100', 1, 1,"
               " 'completed', '2026-01-05T15:00:00.000Z') RETURNING id")
    assert "call-1" in cli("calls", "list", "--campaign", "spring")
    assert "completed" in cli("calls", "show", "call-1")
    assert "call-1" in cli("contacts", "show", "+12025550100", "--json")
    assert _rows(url, "SELECT COUNT(*) FROM contacts") == [(2,)]
    assert _rows(url, "SELECT e164 FROM dnc") == [("+12025550101",)]
    # --db takes a PostgreSQL URL too, whatever the settings say.
    sqlite_cfg = tmp_path / "sqlite.yaml"
    sqlite_cfg.write_text(f"database: {{path: {tmp_path / 'other.db'}}}\n"
                          f"campaigns_dir: {tmp_path / 'campaigns'}\n")
    assert main(["-c", str(sqlite_cfg), "campaign", "status", "spring", "--db", url]) == 0
    assert "RUNNING" in capsys.readouterr().out
    assert not (tmp_path / "other.db").exists()
