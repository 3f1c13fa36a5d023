"""Retention: finished webhook deliveries (with their attempt log), API audit rows and the
intake's replay keys older than their settings are purged by a periodic job on the
injected clock; pending deliveries are never purged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from api_support import until

from televox_pbx.clock import FakeClock
from televox_pbx.config.settings import HttpSettings, Settings, WebhookSettings
from televox_pbx.store import Store
from televox_pbx.store.api_audit import list_audit, record_audit
from televox_pbx.store.intake import claim_request
from televox_pbx.store.timefmt import iso
from televox_pbx.web.retention import RetentionJob


def _settings(tmp_path: Path) -> Settings:
    return Settings(http=HttpSettings(audit_retention_days=90),
                    webhooks=WebhookSettings(log_retention_days=7),
                    database={"path": tmp_path / "x.db"})  # type: ignore[arg-type]


async def _delivery(store: Store, event_id: str, status: str, created: str) -> int:
    delivery_id = await store.execute(
        "INSERT INTO webhook_deliveries(url, event, payload_json, status, created_at, event_id,"
        " subscription) VALUES ('http://x', 'call.completed', '{}', ?, ?, ?, 'crm')",
        (status, created, event_id))
    await store.execute("INSERT INTO webhook_attempts(delivery_id, attempt, at) VALUES (?,1,?)",
                        (delivery_id, created))
    return delivery_id


async def _ids(store: Store, sql: str) -> list[str]:
    return [str(r[0]) for r in await store.fetchall(sql)]


@pytest.mark.both_backends  # the purge's SQL on PostgreSQL too (it once used SQLite's rowid)
async def test_purge_by_age_on_the_clock(store: Store, tmp_path: Path) -> None:
    clock = FakeClock()
    now = clock.now()
    old, recent = iso(now - timedelta(days=8)), iso(now - timedelta(days=6))
    await _delivery(store, "old-done", "delivered", old)
    await _delivery(store, "old-failed", "failed", old)
    await _delivery(store, "old-pending", "pending", old)  # still being retried: kept
    await _delivery(store, "new-done", "delivered", recent)
    for days, action in ((100, "old"), (80, "recent")):
        await record_audit(store, actor="ops", action=action, target="x", detail={},
                           at=now - timedelta(days=days))
    await claim_request(store, "crm", "id:1", now - timedelta(hours=3),
                        now - timedelta(days=1))
    job = RetentionJob(store, _settings(tmp_path), clock, interval_s=3600)
    await job.step()
    assert sorted(await _ids(store, "SELECT event_id FROM webhook_deliveries")) == [
        "new-done", "old-pending"]
    assert len(await _ids(store, "SELECT id FROM webhook_attempts")) == 2  # cascaded
    entries, _ = await list_audit(store)
    assert [e.action for e in entries] == ["recent"]
    assert await _ids(store, "SELECT key FROM intake_seen") == []
    # Two days on, what has aged past the setting goes too.
    await clock.advance(2 * 86400)
    await job.step()
    assert await _ids(store, "SELECT event_id FROM webhook_deliveries") == ["old-pending"]


async def test_the_job_runs_at_start_and_then_every_interval(store: Store,
                                                             tmp_path: Path) -> None:
    clock = FakeClock()
    job = RetentionJob(store, _settings(tmp_path), clock, interval_s=3600)
    task = asyncio.create_task(job.run())
    try:
        await until_true(lambda: job.runs == 1)
        await clock.advance(3599)
        assert job.runs == 1
        await clock.advance(1)
        await until_true(lambda: job.runs == 2)
    finally:
        task.cancel()


async def until_true(check: Callable[[], bool]) -> None:
    """The job's store work runs on aiosqlite's thread: give it real time to finish."""
    async def ok() -> bool:
        return check()
    await until(ok, 10)


async def test_a_big_backlog_goes_in_batches(store: Store, tmp_path: Path) -> None:
    clock = FakeClock()
    old = iso(clock.now() - timedelta(days=400))
    await store.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4500)"
        " INSERT INTO api_audit(at, actor, action) SELECT ?, 'ops', 'x' FROM n", (old,))
    out = await RetentionJob(store, _settings(tmp_path), clock).step()
    assert out["api_audit"] == 4500
    assert (await list_audit(store))[1] == 0
