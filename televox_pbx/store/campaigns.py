"""Campaign rows: state, config snapshot, pass bookkeeping, operator requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiosqlite import Row

from televox_pbx.config.campaign import Campaign
from televox_pbx.store.db import Store
from televox_pbx.store.timefmt import iso, parse_iso

STATES = ("IDLE", "SCHEDULED", "RUNNING", "PAUSED", "COMPLETED")


@dataclass(frozen=True, slots=True)
class CampaignRow:
    id: int
    name: str
    state: str
    scheduled_at: datetime | None
    config_json: str
    current_pass: int
    pass_started_at: datetime | None  # the next pass may dial from this time on
    run_now_requested: bool

    def config(self) -> Campaign | None:
        """The campaign as configured when last started; None if never stored."""
        if not self.config_json or self.config_json == "{}":
            return None
        return Campaign.model_validate_json(self.config_json)


_COLS = ("id, name, state, scheduled_at, config_json, current_pass, pass_started_at,"
         " run_now_requested")


def _row(r: Row) -> CampaignRow:
    return CampaignRow(int(r["id"]), str(r["name"]), str(r["state"]),
                       parse_iso(r["scheduled_at"]), str(r["config_json"]),
                       int(r["current_pass"]), parse_iso(r["pass_started_at"]),
                       bool(r["run_now_requested"]))


async def upsert_campaign(store: Store, campaign: Campaign) -> int:
    """Create the row or refresh its config snapshot; returns the campaign id."""
    await store.execute(
        "INSERT INTO campaigns(name, config_json) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET config_json = excluded.config_json,"
        " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        (campaign.name, campaign.model_dump_json()))
    row = await store.fetchone("SELECT id FROM campaigns WHERE name = ?", (campaign.name,))
    assert row is not None
    return int(row["id"])


async def get_campaign(store: Store, name: str) -> CampaignRow | None:
    row = await store.fetchone(f"SELECT {_COLS} FROM campaigns WHERE name = ?", (name,))
    return _row(row) if row else None


async def get_campaign_by_id(store: Store, campaign_id: int) -> CampaignRow | None:
    row = await store.fetchone(f"SELECT {_COLS} FROM campaigns WHERE id = ?", (campaign_id,))
    return _row(row) if row else None


async def campaigns_in_states(store: Store, states: tuple[str, ...]) -> list[CampaignRow]:
    marks = ",".join("?" * len(states))
    rows = await store.fetchall(
        f"SELECT {_COLS} FROM campaigns WHERE state IN ({marks}) ORDER BY id", states)
    return [_row(r) for r in rows]


async def set_state(store: Store, campaign_id: int, state: str, at: datetime,
                    scheduled_at: datetime | None = None) -> None:
    if state not in STATES:
        raise ValueError(f"unknown campaign state {state!r}")
    await store.execute(
        "UPDATE campaigns SET state = ?, scheduled_at = ?, state_changed_at = ?,"
        " updated_at = ? WHERE id = ?",
        (state, iso(scheduled_at) if scheduled_at else None, iso(at), iso(at), campaign_id))


async def start_scheduled(store: Store, campaign_id: int, at: datetime) -> bool:
    """A due scheduled campaign starts: SCHEDULED -> RUNNING only if it is still SCHEDULED.
    One conditional UPDATE (the row's lock orders racing writers): of several nodes, or an
    operator's pause in between, exactly one start happens and one state change is logged
    (issue 19 item 5). False: another node started it, or it is no longer scheduled."""
    async with store.transaction(tag="campaign_state") as conn:
        cur = await conn.execute(
            "UPDATE campaigns SET state = 'RUNNING', scheduled_at = NULL, state_changed_at = ?,"
            " updated_at = ? WHERE id = ? AND state = 'SCHEDULED'",
            (iso(at), iso(at), campaign_id))
        return int(cur.rowcount) == 1


async def set_run_now(store: Store, campaign_id: int, requested: bool) -> None:
    await store.execute("UPDATE campaigns SET run_now_requested = ? WHERE id = ?",
                        (int(requested), campaign_id))


async def set_pass(store: Store, campaign_id: int, current_pass: int,
                   starts_at: datetime | None) -> None:
    await store.execute(
        "UPDATE campaigns SET current_pass = ?, pass_started_at = ? WHERE id = ?",
        (current_pass, iso(starts_at) if starts_at else None, campaign_id))
