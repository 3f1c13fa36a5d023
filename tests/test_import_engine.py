"""The import engine end to end against a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from televox_pbx.campaigns.csvio import parse_text, read_csv
from televox_pbx.campaigns.importer import (
    MAX_CELL_CHARS,
    ImportSummary,
    RowPlanner,
    headers_of,
    import_records,
    import_rows,
    rows_from_records,
    write_rejects,
)
from televox_pbx.campaigns.mapping import MappingError, SourceRow, build_mapping
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import Store
from televox_pbx.store.contacts import contacts_for_export, ensure_campaign
from televox_pbx.store.dnc import add_numbers

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


pytestmark = pytest.mark.both_backends  # each store test on SQLite and on PostgreSQL


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    yield s
    await s.close()


async def _import(store: Store, text: str, campaign: str = "c", *, dry_run: bool = False,
                  explicit: dict[str, str] | None = None) -> ImportSummary:
    table = parse_text(text)
    mapping = build_mapping(table.headers, [r.values for r in table.rows[:200]], explicit)
    cid = await ensure_campaign(store, campaign)
    return await import_rows(store, table.rows, mapping, campaign_id=cid,
                             default_country="US", dry_run=dry_run, now=NOW)


async def _phones(store: Store, campaign: str = "c") -> list[tuple[int, int, str]]:
    rows = await store.fetchall(
        "SELECT p.contact_id, p.position, p.e164 FROM contact_phones p"
        " JOIN campaigns c ON c.id = p.campaign_id WHERE c.name = ?"
        " ORDER BY p.contact_id, p.position", (campaign,))
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]


async def test_summary_buckets_and_stored_rows(store: Store) -> None:
    await add_numbers(store, "default", [("+12025550199", "asked")], "manual", "t", "x")
    text = (
        "Name,Phone,Mobile,case number,TZ\n"
        "Ann,(202) 555-0100,,A1,America/New_York\n"      # 1 added
        "Bo,202-555-0100,,A2,\n"                          # 2 duplicate of row 1
        "Cy,12,,A3,\n"                                     # 3 invalid
        "Di,,,A4,\n"                                       # 4 invalid: no phone
        "Ed,2025550199,,A5,\n"                             # 5 on DNC
        "Fi,hello,+1 202 555 0101,A6,Mars/Base\n"         # 6 added with warnings
        "Gu,2025550199,2025550102,A7,\n")                 # 7 added, DNC phone dropped
    s = await _import(store, text)
    assert s.counts() == {"rows": 7, "added": 3, "phones_added": 3, "invalid": 2,
                          "duplicate": 1, "dnc": 1, "warnings": 2}
    assert s.balanced()
    assert [(i.row, i.line) for i in s.rejects()] == [(2, 3), (3, 4), (4, 5), (5, 6)]
    assert s.duplicate[0].reason == "duplicate of row 1"
    assert "too short" in s.invalid[0].reason and s.invalid[1].reason == "no phone number"
    assert s.dnc[0].reason == "on DNC list"
    warn = {w.row: w.reason for w in s.warnings}
    assert "Phone: not a phone number" in warn[6] and "Mars/Base" in warn[6]
    assert "on DNC list" in warn[7]
    phones = await _phones(store)
    assert [(pos, e) for _, pos, e in phones] == [
        (1, "+12025550100"), (1, "+12025550101"), (1, "+12025550102")]
    rows = await store.fetchall("SELECT name, timezone, variables_json, source, created_at"
                                " FROM contacts ORDER BY id")
    assert [r["name"] for r in rows] == ["Ann", "Fi", "Gu"]
    assert rows[0]["timezone"] == "America/New_York" and rows[1]["timezone"] is None
    assert json.loads(rows[0]["variables_json"]) == {"CASE_NUMBER": "A1"}
    assert rows[0]["source"] == "csv" and rows[0]["created_at"] == "2026-01-05T15:00:00.000Z"
    run = await store.fetchone("SELECT rows, added, invalid, duplicate, dnc FROM import_runs")
    assert run is not None and tuple(run) == (7, 3, 2, 1, 1)


async def test_dedupe_against_existing_campaign_and_not_other_campaigns(store: Store) -> None:
    await _import(store, "name,phone\nAnn,2025550100\n")
    again = await _import(store, "name,phone\nAnn again,+12025550100\nBo,2025550101\n")
    assert again.counts()["duplicate"] == 1 and again.added == 1
    assert again.duplicate[0].reason == "already in the campaign"
    other = await _import(store, "name,phone\nAnn,2025550100\n", campaign="other")
    assert other.added == 1


async def test_ten_phone_columns_positions_in_column_order(store: Store) -> None:
    headers = ",".join(["name"] + [f"phone{i}" for i in range(1, 11)])
    phones = [f"(202) 555-01{i:02d}" for i in range(10)]
    phones[3] = "bad"
    phones[5] = ""
    s = await _import(store, f"{headers}\nAnn,{','.join(phones)}\n")
    assert s.added == 1 and s.phones_added == 8
    stored = await _phones(store)
    assert [p for _, p, _ in stored] == list(range(1, 9))
    assert stored[3][2] == "+12025550104"  # phone4 was bad: positions close the gap
    assert "phone4: not a phone number" in s.warnings[0].reason


async def test_repeated_number_within_a_row_is_kept_once(store: Store) -> None:
    s = await _import(store, "phone1,phone2\n2025550100,+1 202 555 0100\n")
    assert s.added == 1 and s.phones_added == 1
    assert "duplicate" in s.warnings[0].reason


async def test_dry_run_stores_nothing(store: Store) -> None:
    s = await _import(store, "name,phone\nAnn,2025550100\n", dry_run=True)
    assert s.added == 1 and s.dry_run
    assert await _phones(store) == []
    assert await store.fetchone("SELECT 1 FROM import_runs") is None


async def test_dry_run_without_campaign_row(store: Store) -> None:
    table = parse_text("name,phone\nAnn,2025550100\n")
    s = await import_rows(store, table.rows, build_mapping(table.headers), campaign_id=None,
                          default_country="US", dry_run=True)
    assert s.added == 1
    with pytest.raises(ValueError, match="campaign id"):
        await import_rows(store, table.rows, build_mapping(table.headers), campaign_id=None,
                          default_country="US")


async def test_huge_cell_rejected_with_reason(store: Store) -> None:
    big = "x" * (MAX_CELL_CHARS + 1)
    s = await _import(store, f"name,phone,notes\nAnn,2025550100,{big}\nBo,2025550101,ok\n")
    assert s.added == 1 and len(s.invalid) == 1
    assert s.invalid[0].reason.startswith("notes: 65537 characters")


async def test_broken_rows_reported_not_dropped(store: Store) -> None:
    text = 'name,phone\n"Bob,2025550100\nAlice,2025550101\nCarol,2025550102,extra\n'
    s = await _import(store, text)
    assert s.rows == 3 and s.added == 1 and len(s.invalid) == 2
    assert {i.reason for i in s.invalid} == {"unbalanced quote",
                                             "3 fields but the header has 2"}


async def test_records_from_api_or_manual_entry(store: Store) -> None:
    records: list[dict[str, object]] = [
        {"first_name": "Ann", "last_name": "Lee", "phone": "2025550100", "Plan": "gold"},
        {"name": "Bo", "phone": 2025550101, "Plan": None, "extra": "x"}]
    rows = rows_from_records(records)
    mapping = build_mapping(headers_of(rows), [r.values for r in rows])
    cid = await ensure_campaign(store, "api")
    s = await import_rows(store, rows, mapping, campaign_id=cid, default_country="US",
                          source="api")
    assert s.added == 2
    got = await store.fetchall("SELECT name, first_name, variables_json, source FROM contacts"
                               " ORDER BY id")
    assert got[0]["name"] == "Ann Lee" and got[0]["first_name"] == "Ann"
    assert json.loads(got[1]["variables_json"]) == {"PLAN": "", "EXTRA": "x"}
    assert {r["source"] for r in got} == {"api"}


async def test_rejects_file_round_trip(store: Store, tmp_path: Path) -> None:
    text = "name,phone,note\n=evil(),2025550100,x\nBo,2025550100,y\nCy,nope,z\n"
    s = await _import(store, text)
    path = tmp_path / "rejects.csv"
    assert write_rejects(path, s, ["name", "phone", "note"]) == 2
    back = read_csv(path)
    assert [r.values["_reason"] for r in back.rows] == ["duplicate of row 1",
                                                        "phone: not a phone number (no digits)"]
    assert back.rows[0].values["name"] == "Bo"
    header, exported = await contacts_for_export(store, await ensure_campaign(store, "c"))
    assert exported[0][1] == "=evil()" and header[8] == "phone1"


async def test_progress_and_batches(store: Store) -> None:
    lines = "\n".join(f"P{i},+1202555{i:04d}" for i in range(2500))
    table = parse_text("name,phone\n" + lines + "\n")
    seen: list[tuple[int, int]] = []
    cid = await ensure_campaign(store, "c")
    s = await import_rows(store, table.rows, build_mapping(table.headers), campaign_id=cid,
                          default_country="US", batch_rows=700,
                          on_progress=lambda d, t: seen.append((d, t)))
    assert s.added == 2500 and seen[-1] == (2500, 2500)
    assert len(await _phones(store)) == 2500
    ids = await store.fetchall("SELECT COUNT(DISTINCT contact_id) FROM contact_phones")
    assert ids[0][0] == 2500


_phone_cells = st.one_of(
    st.sampled_from(["2025550100", "(202) 555-0101", "+1 202 555 0102", "202.555.0100",
                     "12", "", "hello", "+44 20 7946 0000", "2025550199", "555-0198"]),
    st.builds(lambda n: f"+1202555{n:04d}", st.integers(0, 40)))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_phone_cells, _phone_cells, st.booleans()), max_size=40),
       existing=st.lists(st.integers(0, 40), max_size=5))
def test_property_no_row_lost_no_duplicate_stored(
        rows: list[tuple[str, str, bool]], existing: list[int]) -> None:
    summary = ImportSummary()
    mapping = build_mapping(["name", "phone1", "phone2"])
    existing_e164 = {f"+1202555{n:04d}" for n in existing}
    planner = RowPlanner(mapping, "US", existing_e164, {"+12025550199"}, summary)
    source = [SourceRow(i + 1, {"name": "x", "phone1": a, "phone2": b},
                        error="unbalanced quote" if broken and i % 3 == 0 else None)
              for i, (a, b, broken) in enumerate(rows)]
    planned = [c for c in (planner.plan(r) for r in source) if c is not None]
    assert summary.balanced() and summary.rows == len(rows)
    assert summary.added == len(planned)
    stored = [p for c in planned for p in c.phones]
    assert len(stored) == len(set(stored))  # never a duplicate phone
    assert not set(stored) & existing_e164 and "+12025550199" not in stored
    for c in planned:
        for p in c.phones:
            assert normalize_phone(p, "US").e164 == p


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list('ab,;"\n\r\t|2025550100 +()x\x00é')),
                    max_size=300))
async def test_property_any_text_imports_without_crash(tmp_path: Path, text: str) -> None:
    store = await Store.open(tmp_path / f"p{abs(hash(text))}.db")
    try:
        table = parse_text("name,phone\n" + text)
        cid = await ensure_campaign(store, "c")
        s = await import_rows(store, table.rows, build_mapping(table.headers), campaign_id=cid,
                              default_country="US")
        assert s.balanced() and s.rows == len(table.rows)
        phones = await store.fetchall("SELECT e164 FROM contact_phones")
        assert len(phones) == s.phones_added
    finally:
        await store.close()


async def test_import_records_uses_campaign_mapping(store: Store) -> None:
    campaign = Campaign.model_validate({
        "name": "api", "caller_id": "+15550100000", "trunk": "t", "default_country": "GB",
        "agent": {"persona_name": "Ava", "business": "Acme", "goal": "g",
                  "opening_line": "Hi, I'm an AI assistant."},
        "import_mapping": {"Handy": "phone1"}})
    cid = await ensure_campaign(store, "api")
    mapping, s = await import_records(store, campaign, cid, [
        {"Kunde": "Ann", "Handy": "020 7946 0000"}, {"Kunde": "Bo", "Handy": "nope"}],
        explicit={"Kunde": "name"}, source="webhook")
    assert mapping.phone_headers() == ["Handy"] and s.added == 1 and len(s.invalid) == 1
    assert s.to_dict()["invalid_rows"] == [{"row": 2, "line": None,
                                            "reason": "Handy: not a phone number (no digits)"}]
    assert await _phones(store, "api") == [(1, 1, "+442079460000")]
    with pytest.raises(MappingError):
        await import_records(store, campaign, cid, [{"x": "1"}], explicit={"x": "bogus"})
