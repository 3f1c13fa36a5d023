"""Transcripts, recordings and the disposition land in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from televox_pbx.campaigns.dnc import CallDnc, DncService
from televox_pbx.clock import FakeClock
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import is_on_dnc
from televox_pbx.store.transcripts import (
    CallRecord,
    StoreCallbacks,
    StoreCallLog,
    TurnRow,
    recordings,
    transcript,
)

AT = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.mark.both_backends
async def test_save_call(tmp_path: Path, store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        await store.execute("INSERT INTO call_attempts(id, phone) VALUES (?, ?)",
                            ("a1", "+15550198000"))
        turns = [TurnRow(1, "agent", "Hi, I'm an AI assistant.", AT, AT),
                 TurnRow(2, "callee", "Yes please.", AT, AT),
                 TurnRow(3, "agent", "Great, I", AT, AT, True, {"first_frame_ms": 812.5})]
        await StoreCallLog(store).save_call(
            CallRecord("a1", turns, "INTERESTED", tmp_path / "a1.wav", 12.5))
        got = await transcript(store, "a1")
        assert got == turns
        assert await recordings(store, "a1") == [(tmp_path / "a1.wav", 12.5)]
        row = await store.fetchone("SELECT disposition, turns FROM call_attempts WHERE id='a1'")
        assert row is not None and (row["disposition"], row["turns"]) == ("INTERESTED", 1)
    finally:
        await store.close()


@pytest.mark.both_backends
async def test_store_ports_for_dnc_and_callbacks(tmp_path: Path, store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        await store.execute("INSERT INTO campaigns(id, name) VALUES (1, 'c')")
        await store.execute("INSERT INTO contacts(id, campaign_id) VALUES (7, 1)")
        await store.execute("INSERT INTO call_attempts(id, phone, contact_id) VALUES (?, ?, 7)",
                            ("a1", "+15550198000"))
        dnc = CallDnc(DncService(store, clock=FakeClock()))
        # A caller ID as Asterisk gives it is normalised, like every other DNC write.
        await dnc.add("(555) 019-8000", reason="asked", source="call:x")
        assert await is_on_dnc(store, "+15550198000")
        due = datetime(2026, 1, 6, 20, 0, tzinfo=UTC)
        await StoreCallbacks(store).schedule("a1", due, "America/New_York")
        row = await store.fetchone("SELECT contact_id, due_at, zone, status FROM callbacks")
        assert row is not None
        assert tuple(row) == (7, "2026-01-06T20:00:00.000Z", "America/New_York", "pending")
    finally:
        await store.close()
