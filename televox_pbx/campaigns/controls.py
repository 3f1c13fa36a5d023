"""Campaign state machine and the operator actions (CLI and API share these).

IDLE -> SCHEDULED -> RUNNING <-> PAUSED -> COMPLETED. Actions only write the store; the
daemon's dialer sees the change on its next tick. Pause stops new calls; calls already
up finish normally.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from televox_pbx.campaigns.groups import GroupError, resolve_for_campaign
from televox_pbx.config.campaign import Campaign
from televox_pbx.store.campaigns import (
    CampaignRow,
    get_campaign,
    set_run_now,
    set_state,
    upsert_campaign,
)
from televox_pbx.store.db import Store
from televox_pbx.store.dial_queue import requeue_contacts, restart_contacts


class State(StrEnum):
    IDLE = "IDLE"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"


class Action(StrEnum):
    START = "start"
    SCHEDULE = "schedule"
    PAUSE = "pause"
    RESUME = "resume"
    RESTART = "restart"
    RUN_NOW = "run-now"
    REQUEUE = "requeue"


# Which states each action may start from, and where it leads (None: state unchanged).
_RULES: dict[Action, tuple[frozenset[State], State | None]] = {
    Action.START: (frozenset({State.IDLE, State.SCHEDULED}), State.RUNNING),
    Action.SCHEDULE: (frozenset({State.IDLE, State.SCHEDULED, State.PAUSED}), State.SCHEDULED),
    Action.PAUSE: (frozenset({State.RUNNING, State.SCHEDULED}), State.PAUSED),
    Action.RESUME: (frozenset({State.PAUSED}), State.RUNNING),
    Action.RESTART: (frozenset(State), State.RUNNING),
    Action.RUN_NOW: (frozenset({State.IDLE, State.SCHEDULED, State.RUNNING, State.PAUSED}),
                     State.RUNNING),
    Action.REQUEUE: (frozenset(State), None),
}


class ControlError(Exception):
    """An action that makes no sense in the campaign's current state."""


def transition(state: State, action: Action) -> State | None:
    allowed, target = _RULES[action]
    if state not in allowed:
        hint = " (use restart)" if state is State.COMPLETED else ""
        raise ControlError(f"cannot {action.value} a campaign that is {state.value}{hint}")
    return target


async def apply(store: Store, name: str, action: Action, now: datetime, *,
                campaign: Campaign | None = None, at: datetime | None = None,
                workspace: str = "default") -> CampaignRow:
    """Run one operator action. `campaign` refreshes the stored config (start/restart/
    schedule read the YAML); `at` is the schedule time. Starting a campaign that targets
    contact groups makes their members its contacts (campaigns/groups.py)."""
    if campaign is not None:
        await upsert_campaign(store, campaign)
    row = await get_campaign(store, name)
    if row is None:
        raise ControlError(f"no campaign named {name!r} in the store (import contacts first)")
    if row.config() is None:
        raise ControlError(f"campaign {name!r} has no stored configuration; start it from YAML")
    state = State(row.state)
    target = transition(state, action)
    cfg = row.config()
    if cfg is not None and cfg.groups and target in (State.RUNNING, State.SCHEDULED):
        try:
            await resolve_for_campaign(store, row.id, cfg, workspace=workspace, now=now)
        except GroupError as exc:
            raise ControlError(str(exc)) from exc
    if action is Action.SCHEDULE:
        if at is None:
            raise ControlError("schedule needs a time")
        await set_state(store, row.id, State.SCHEDULED, now, scheduled_at=at)
    elif action is Action.RESTART:
        await restart_contacts(store, row.id, now)
        await set_state(store, row.id, State.RUNNING, now)
    elif action is Action.REQUEUE:
        await requeue_contacts(store, row.id, row.current_pass, now)
        if state is State.COMPLETED:  # there is work again
            await set_state(store, row.id, State.RUNNING, now)
    elif target is not None:
        await set_state(store, row.id, target, now)
    if action is Action.RUN_NOW:
        await set_run_now(store, row.id, True)
    fresh = await get_campaign(store, name)
    assert fresh is not None
    return fresh
