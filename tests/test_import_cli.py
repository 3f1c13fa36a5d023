"""`televox campaign import|template` through the real command line."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from televox_pbx.cli import main
from televox_pbx.cli.campaign_import import add_import_commands
from televox_pbx.store import Store

CAMPAIGN_YAML = """\
name: spring
agent:
  persona_name: Ava
  business: Acme
  goal: "Confirm {{APPOINTMENT_DATE}}"
  opening_line: "Hi {{NAME}}, I'm Ava, an AI assistant calling about case {{ Case_Number }}."
  context: "Account {{ACCOUNT}}; plan {{NAME}}."
caller_id: "+15550100000"
trunk: trunk
import_mapping:
  Cell: phone1
"""


@pytest.fixture
def env(tmp_path: Path) -> Path:
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "spring.yaml").write_text(CAMPAIGN_YAML)
    settings = tmp_path / "televox.yaml"
    settings.write_text(f"database: {{path: {tmp_path / 't.db'}}}\n"
                        f"campaigns_dir: {tmp_path / 'campaigns'}\n")
    return settings


def cli(settings: Path, *argv: str) -> int:
    return main(["-c", str(settings), "campaign", *argv])


def _count(db: Path, sql: str) -> int:
    async def go() -> int:
        s = await Store.open(db)
        try:
            row = await s.fetchone(sql)
            return int(row[0]) if row else 0
        finally:
            await s.close()
    return asyncio.run(go())


def test_add_import_commands_on_a_bare_parser() -> None:
    parser = argparse.ArgumentParser()
    add_import_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["import", "x", "f.csv", "--map", "Mobile=phone1", "--map",
                              "Home=phone2", "--dry-run", "--rejects", "r.csv"])
    assert args.map == ["Mobile=phone1", "Home=phone2"] and args.dry_run
    assert args.rejects == Path("r.csv") and callable(args.func)
    args = parser.parse_args(["template", "x", "--out", "t.csv"])
    assert args.out == Path("t.csv")


def test_dry_run_shows_mapping_and_stores_nothing(env: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.csv"
    f.write_text("Name;Cell;Other;case number\nAnn;(202) 555-0100;2025550101;A1\n"
                 "Bo;nope;;A2\n")
    assert cli(env, "import", "spring", str(f), "--map", "Other=phone2", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Column mapping" in out and "explicit" in out and "{{CASE_NUMBER}}" in out
    assert "would add 1 contact(s) (2 phone(s)); invalid 1" in out
    assert "row 2 (line 3): invalid" in out
    assert not (tmp_path / "c.csv.rejects.csv").exists()
    assert _count(tmp_path / "t.db", "SELECT COUNT(*) FROM contacts") == 0


def test_import_writes_contacts_and_rejects(env: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.csv"
    f.write_bytes("\ufeffName,Cell,Note\nJosé,2025550100,=HYPERLINK(1)\nBo,2025550100,\n"
                  .encode())
    assert cli(env, "import", "spring", str(f)) == 0
    out = capsys.readouterr().out
    assert "added 1 contact(s)" in out and "duplicate 1" in out
    rejects = tmp_path / "c.csv.rejects.csv"
    assert rejects.exists() and "duplicate of row 1" in rejects.read_text("utf-8-sig")
    assert _count(tmp_path / "t.db", "SELECT COUNT(*) FROM contact_phones") == 1
    custom = tmp_path / "rej.csv"
    assert cli(env, "import", "spring", str(f), "--rejects", str(custom)) == 0
    assert "already in the campaign" in custom.read_text("utf-8-sig")


def test_import_errors(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.csv"
    f.write_text("Name,Cell\nAnn,2025550100\n")
    assert cli(env, "import", "nope", str(f)) == 1
    assert "no such campaign" in capsys.readouterr().err
    assert cli(env, "import", "spring", str(tmp_path / "missing.csv")) == 1
    assert "cannot read" in capsys.readouterr().err
    assert cli(env, "import", "spring", str(f), "--map", "Ghost=phone") == 2
    assert "no column 'Ghost'" in capsys.readouterr().err
    assert cli(env, "import", "spring", str(f), "--map", "Cell=telepathy") == 2
    assert "unknown field" in capsys.readouterr().err
    g = tmp_path / "g.csv"
    g.write_text("Name,City\nAnn,Paris\n")
    assert cli(env, "import", "spring", str(g)) == 1
    assert "no phone column" in capsys.readouterr().err


def test_big_file_with_progress(env: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "big.csv"
    f.write_text("name,phone\n" + "".join(f"P{i},+1202555{i:04d}\n" for i in range(6000)))
    assert cli(env, "import", "spring", str(f)) == 0
    assert "added 6000 contact(s)" in capsys.readouterr().out
    assert _count(tmp_path / "t.db", "SELECT COUNT(*) FROM contacts") == 6000


def test_template(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tpl.csv"
    assert cli(env, "template", "spring", "--out", str(out)) == 0
    header = out.read_text("utf-8-sig").strip()
    assert header == "NAME,CASE_NUMBER,APPOINTMENT_DATE,ACCOUNT,phone1,phone2,phone3,timezone"
    assert cli(env, "template", "spring", "--out", str(out)) == 1
    assert "exists" in capsys.readouterr().err
    assert cli(env, "template", "spring", "--out", str(out), "--force") == 0


def test_export_contacts_and_results(env: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.csv"
    f.write_text("Name,Cell\n=1+2,2025550100\nBo,2025550101\n")
    assert cli(env, "import", "spring", str(f)) == 0
    out = tmp_path / "contacts.csv"
    assert cli(env, "export", "spring", str(out)) == 0
    text = out.read_text("utf-8-sig")
    assert "'=1+2" in text and "'+12025550100" in text and "pending" in text

    async def attempt() -> None:
        s = await Store.open(tmp_path / "t.db")
        try:
            await s.execute(
                "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, status,"
                " disposition) VALUES ('a-1', 1, 1, '+12025550100', 'completed', 'INTERESTED')")
        finally:
            await s.close()
    asyncio.run(attempt())
    res = tmp_path / "results.csv"
    assert cli(env, "export", "spring", str(res), "--results") == 0
    lines = res.read_text("utf-8-sig").splitlines()
    assert lines[0].startswith("attempt_id,contact_id,name,phone")
    assert lines[1].startswith("a-1,1,'=1+2,'+12025550100")
    assert cli(env, "export", "ghost", str(res)) == 1


def test_markup_like_headers_are_shown_verbatim(env: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.csv"
    f.write_text("[bold]Name[/],Cell,[red]x\nAnn,2025550100,1\n")
    assert cli(env, "import", "spring", str(f), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "[bold]Name[/]" in out and "[red]x" in out


def test_unwritable_outputs_fail_cleanly(env: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.csv"
    f.write_text("Name,Cell\nAnn,nope\n")
    nowhere = tmp_path / "no" / "such" / "dir" / "x.csv"
    assert cli(env, "import", "spring", str(f), "--rejects", str(nowhere)) == 1
    assert "cannot write the rejected rows" in capsys.readouterr().err
    assert cli(env, "template", "spring", "--out", str(nowhere)) == 1
    assert cli(env, "export", "spring", str(nowhere)) == 1
    assert "cannot write" in capsys.readouterr().err
