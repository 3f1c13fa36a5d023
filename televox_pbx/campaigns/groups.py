"""Contact groups, reused across campaigns (issue 16).

A group holds people (deduplicated by E.164 inside it); a campaign names groups in its
YAML (`groups: [...]`). Members become the campaign's contacts when it starts, and a
member added later joins every started campaign that targets the group at once. A
member whose numbers are already in the campaign, or all on the DNC list, is skipped.
Removing a member from a group leaves the campaign contacts made from it alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping as MappingT
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from televox_pbx.campaigns.importer import (
    ImportSummary,
    RowPlanner,
    headers_of,
    rows_from_records,
)
from televox_pbx.campaigns.mapping import Mapping, SourceRow, build_mapping
from televox_pbx.campaigns.phones import normalize_phone
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import groups as gs
from televox_pbx.store.campaigns import campaigns_in_states
from televox_pbx.store.contacts import NewContact, campaign_phones, insert_contacts
from televox_pbx.store.db import Store
from televox_pbx.store.dnc import dnc_numbers
from televox_pbx.store.timefmt import iso

log = logging.getLogger(__name__)

_BATCH = 5_000
# Campaigns in these states hold their members; a new member joins them at once.
STARTED = ("RUNNING", "PAUSED", "SCHEDULED")


class GroupError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Resolved:
    campaign: str
    added: int
    skipped: int  # already in the campaign, or every number on the DNC list


async def import_into_group(store: Store, group: str, rows: Sequence[SourceRow],
                            mapping: Mapping, *, default_country: str,
                            workspace: str = "default", dry_run: bool = False,
                            now: datetime | None = None) -> ImportSummary:
    """The campaign importer's planner (normalise, dedupe, DNC) writing into a group;
    then the new members join the started campaigns that target the group."""
    summary = ImportSummary(dry_run=dry_run)
    gid = await gs.group_id(store, group)
    if gid is None and not dry_run:
        gid = await gs.ensure_group(store, group)
    existing = await gs.group_phones(store, gid) if gid is not None else set()
    planner = RowPlanner(mapping, default_country, existing,
                         await dnc_numbers(store, workspace), summary)
    at = iso(now or datetime.now(UTC))
    batch: list[NewContact] = []
    for i, row in enumerate(rows, 1):
        contact = planner.plan(row)
        if contact is not None:
            batch.append(contact)
        if gid is not None and not dry_run and (len(batch) >= _BATCH or i == len(rows)):
            await gs.insert_members(store, gid, batch, at)
            batch = []
        if i % 1000 == 0:
            await asyncio.sleep(0)
    if not dry_run and summary.added:
        await join_started(store, group, workspace=workspace, now=now)
    log.info("group import finished", extra={**summary.counts(), "dry_run": dry_run})
    return summary


async def add_member(store: Store, group: str, record: MappingT[str, object], *,
                     default_country: str = "US", workspace: str = "default",
                     explicit: MappingT[str, str] | None = None,
                     now: datetime | None = None) -> ImportSummary:
    """One person (header -> value, e.g. {"phone": ..., "name": ...})."""
    rows = rows_from_records([record])
    mapping = build_mapping(headers_of(rows), [r.values for r in rows], dict(explicit or {}),
                            default_country=default_country)
    if not mapping.phone_headers():
        raise GroupError("no phone field in the member")
    return await import_into_group(store, group, rows, mapping,
                                   default_country=default_country, workspace=workspace,
                                   now=now)


async def remove_member(store: Store, group: str, phone: str,
                        default_country: str = "US") -> bool:
    gid = await gs.group_id(store, group)
    if gid is None:
        raise GroupError(f"no group named {group!r}")
    e164 = normalize_phone(phone, default_country).e164
    if e164 is None:
        raise GroupError("not a valid phone number")
    return await gs.remove_member(store, gid, e164)


async def resolve_for_campaign(store: Store, campaign_id: int, campaign: Campaign, *,
                               workspace: str = "default",
                               now: datetime | None = None) -> Resolved:
    """Make the members of the campaign's groups its contacts (idempotent: a member
    whose numbers the campaign already has is skipped). Unknown groups are an error."""
    gids: list[int] = []
    for name in campaign.groups:
        gid = await gs.group_id(store, name)
        if gid is None:
            raise GroupError(f"campaign {campaign.name!r} targets group {name!r}, "
                             "which does not exist (televox groups import/add)")
        gids.append(gid)
    members = await gs.members_of(store, gids)
    have = await campaign_phones(store, campaign_id)
    dnc = await dnc_numbers(store, workspace)
    fresh: list[NewContact] = []
    for m in members:
        phones = tuple(p for p in m.phones if p not in have and p not in dnc)
        if len(phones) != len(m.phones) and any(p in have for p in m.phones):
            continue  # this person is in the campaign already
        if not phones:
            continue
        have.update(phones)
        fresh.append(m._replace(phones=phones))
    if fresh:
        await insert_contacts(store, campaign_id, fresh, "group", iso(now or datetime.now(UTC)))
    return Resolved(campaign.name, len(fresh), len(members) - len(fresh))


async def join_started(store: Store, group: str, *, workspace: str = "default",
                       now: datetime | None = None) -> list[Resolved]:
    """New members join every started campaign that targets the group."""
    out: list[Resolved] = []
    for row in await campaigns_in_states(store, STARTED):
        cfg = row.config()
        if cfg is not None and group in cfg.groups:
            out.append(await resolve_for_campaign(store, row.id, cfg, workspace=workspace,
                                                  now=now))
    return out
