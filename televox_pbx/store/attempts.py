"""Call attempts: the intent written before an Originate, progress, and final results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiosqlite import Row

from televox_pbx.domain import CallOutcome, CallStatus
from televox_pbx.store.db import Store, is_unique_violation
from televox_pbx.store.nodes import db_now_s
from televox_pbx.store.timefmt import iso, parse_iso

# Attempt statuses that mean "maybe still on the PBX".
UNFINISHED = ("intent", "originated", "ringing", "answered")
_UNFINISHED_SQL = "('intent','originated','ringing','answered')"
# Every write to an attempt: only the node (and the life of it) that owns the row, or
# anyone for rows no node owns (a single box; rows older than nodes). Two parameters.
OWNED_SQL = " AND (node_id IS NULL OR (node_id = ? AND node_epoch = ?))"


def owner_params(store: Store) -> tuple[str | None, int | None]:
    return (store.node.node_id, store.node.epoch) if store.node else (None, None)


@dataclass(frozen=True, slots=True)
class Intent:
    call_id: str
    campaign_id: int
    contact_id: int
    phone: str
    phone_position: int
    retry_pass: int
    gate_reason: str
    callback_id: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: str
    campaign_id: int | None
    contact_id: int | None
    phone: str
    phone_position: int | None
    retry_pass: int | None
    status: str
    disposition: str | None
    turns: int
    answered_at: datetime | None
    created_at: datetime | None
    direction: str = "outbound"
    originated_at: datetime | None = None
    ringing_at: datetime | None = None
    hangup_at: datetime | None = None
    hangup_cause: int | None = None
    sip_code: int | None = None
    end_status: str | None = None  # the PBX's verdict, kept before the result is applied
    end_failure: str | None = None
    amd_status: str | None = None


def attempt_from_row(r: Row) -> AttemptRow:
    return AttemptRow(
        id=str(r["id"]), campaign_id=r["campaign_id"], contact_id=r["contact_id"],
        phone=str(r["phone"]), phone_position=r["phone_position"], retry_pass=r["retry_pass"],
        status=str(r["status"]), disposition=r["disposition"], turns=int(r["turns"] or 0),
        answered_at=parse_iso(r["answered_at"]), created_at=parse_iso(r["created_at"]),
        direction=str(r["direction"]), originated_at=parse_iso(r["originated_at"]),
        ringing_at=parse_iso(r["ringing_at"]), hangup_at=parse_iso(r["hangup_at"]),
        hangup_cause=r["hangup_cause"], sip_code=r["sip_code"], end_status=r["end_status"],
        end_failure=r["end_failure"], amd_status=r["amd_status"])


_COLS = ("id, campaign_id, contact_id, phone, phone_position, retry_pass, status, disposition,"
         " turns, answered_at, created_at, direction, originated_at, ringing_at, hangup_at,"
         " hangup_cause, sip_code, end_status, end_failure, amd_status")


def attempt_columns(prefix: str = "") -> str:
    """The columns attempt_from_row reads, each qualified with `prefix` (e.g. "a.")."""
    return ", ".join(f"{prefix}{c.strip()}" for c in _COLS.split(","))


class ClaimRefused(Exception):
    """The store refused the claim. `code`: in_call (a live attempt to this number already
    exists, in any campaign, on any node), dnc (the number went on the DNC list), or
    contact_busy (the contact is already on a call on another of its phones)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def claim(store: Store, intent: Intent, now: datetime, workspace: str) -> None:
    """Claim one dial: the attempt row in 'intent' and the contact 'calling', in one
    transaction, written BEFORE the Originate (a crash never leaves a call we don't know).

    The INSERT is the claim: one conditional statement that the database refuses when the
    number is on the DNC list or the contact is already calling, and that the partial
    unique index call_attempts_one_live refuses when the number has a live attempt (a
    second process on the same database included).
    """
    try:
        async with store.transaction(tag="claim") as conn:
            cur = await conn.execute(
                "INSERT INTO call_attempts(id, campaign_id, contact_id, phone, phone_position,"
                " retry_pass, status, created_at, gate_reason, node_id, node_epoch)"
                " SELECT ?,?,?,?,?,?, 'intent', ?, ?, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM dnc WHERE workspace = ? AND e164 = ?)"
                " AND NOT EXISTS (SELECT 1 FROM contacts WHERE id = ?"
                "                 AND status IN ('calling','connected'))",
                (intent.call_id, intent.campaign_id, intent.contact_id, intent.phone,
                 intent.phone_position, intent.retry_pass, iso(now), intent.gate_reason,
                 *owner_params(store), workspace, intent.phone, intent.contact_id))
            if cur.rowcount != 1:
                on_dnc = await store.fetchone(
                    "SELECT 1 FROM dnc WHERE workspace = ? AND e164 = ?",
                    (workspace, intent.phone))
                if on_dnc is not None:
                    raise ClaimRefused("dnc", "on the DNC list")
                raise ClaimRefused("contact_busy", "already in a call")
            await conn.execute(
                "UPDATE contacts SET status = 'calling', last_attempt_at = ?, updated_at = ?"
                " WHERE id = ?", (iso(now), iso(now), intent.contact_id))
            if intent.callback_id is not None:
                await conn.execute(
                    "UPDATE callbacks SET status = 'dialing',"
                    " attempt_id = COALESCE(attempt_id, ?) WHERE id = ? AND status = 'pending'",
                    (intent.call_id, intent.callback_id))
    except Exception as exc:
        if not is_unique_violation(exc, "call_attempts.phone"):
            raise
        raise ClaimRefused("in_call", "already in a call") from exc


async def mark_originated(store: Store, call_id: str, at: datetime) -> None:
    """Originate accepted; only moves an attempt the tracker has not already advanced."""
    await store.execute(
        "UPDATE call_attempts SET status = 'originated', originated_at = COALESCE(originated_at,?)"
        " WHERE id = ? AND status = 'intent'" + OWNED_SQL, (iso(at), call_id, *owner_params(store)))


async def mark_ended(store: Store, outcome: CallOutcome) -> None:
    """The PBX reported the end: keep its timestamps and verdict at once, while the attempt
    stays live until its result is applied, so a crash in between loses no real time."""
    await store.execute(
        f"UPDATE call_attempts SET end_status = ?, end_failure = ?, hangup_cause = ?,"
        f" sip_code = ?, ringing_at = COALESCE(ringing_at, ?),"
        f" answered_at = COALESCE(answered_at, ?), hangup_at = ?"
        f" WHERE id = ? AND status IN {_UNFINISHED_SQL}{OWNED_SQL}",
        (outcome.status.value, outcome.failure.value if outcome.failure else None,
         outcome.hangup_cause, outcome.sip_code, _t(outcome.ringing_at),
         _t(outcome.answered_at), _t(outcome.hangup_at), outcome.call_id, *owner_params(store)))


async def mark_progress(store: Store, outcome: CallOutcome) -> None:
    """Ringing/answered while the call is up; never moves a finished attempt back."""
    await store.execute(
        f"UPDATE call_attempts SET status = ?,"
        f" ringing_at = COALESCE(ringing_at, ?), answered_at = COALESCE(answered_at, ?),"
        f" amd_status = COALESCE(?, amd_status), amd_cause = COALESCE(?, amd_cause)"
        f" WHERE id = ? AND status IN {_UNFINISHED_SQL}{OWNED_SQL}",
        (outcome.status.value, _t(outcome.ringing_at), _t(outcome.answered_at),
         outcome.amd_status.value if outcome.amd_status else None, outcome.amd_cause,
         outcome.call_id, *owner_params(store)))


async def finish(store: Store, outcome: CallOutcome, *, turns: int | None,
                 disposition: str | None, notes: str | None = None) -> bool:
    """Record the final result; False when the attempt was already final (a duplicate).
    Runs inside the caller's outcome transaction (Dialer), never on its own."""
    assert outcome.status.is_final
    assert store.in_transaction(), "finish() belongs inside the outcome transaction"
    async with store.conn.execute(
        f"UPDATE call_attempts SET status = ?, failure = ?, hangup_cause = ?, sip_code = ?,"
        f" amd_status = COALESCE(?, amd_status), amd_cause = COALESCE(?, amd_cause),"
        f" disposition = COALESCE(?, disposition), turns = COALESCE(?, turns),"
        f" duration_s = ?, originated_at = COALESCE(originated_at, ?),"
        f" ringing_at = COALESCE(ringing_at, ?), answered_at = COALESCE(answered_at, ?),"
        f" hangup_at = COALESCE(?, hangup_at), notes = COALESCE(?, notes)"
        f" WHERE id = ? AND status IN {_UNFINISHED_SQL}{OWNED_SQL}",
        (outcome.status.value, outcome.failure.value if outcome.failure else None,
         outcome.hangup_cause, outcome.sip_code,
         outcome.amd_status.value if outcome.amd_status else None, outcome.amd_cause,
         disposition, turns, outcome.duration_s, _t(outcome.originated_at),
         _t(outcome.ringing_at), _t(outcome.answered_at), _t(outcome.hangup_at), notes,
         outcome.call_id, *owner_params(store))) as cur:
        return cur.rowcount == 1


async def get_attempt(store: Store, call_id: str) -> AttemptRow | None:
    row = await store.fetchone(f"SELECT {_COLS} FROM call_attempts WHERE id = ?", (call_id,))
    return attempt_from_row(row) if row else None


async def unfinished_attempts(store: Store) -> list[AttemptRow]:
    """Outbound attempts still live on THIS node's PBX: on a shared database, this node's
    own (not those of other nodes, nor those it adopted from a dead node, whose channels
    are on that node's Asterisk: campaigns/node_reconcile.py settles them)."""
    mine = ""
    params: tuple[object, ...] = ()
    if store.node is not None:
        mine = " AND (node_id IS NULL OR (node_id = ? AND node_epoch = ? AND pbx_node IS NULL))"
        params = (store.node.node_id, store.node.epoch)
    rows = await store.fetchall(
        f"SELECT {_COLS} FROM call_attempts WHERE status IN {_UNFINISHED_SQL}"
        f" AND direction = 'outbound'{mine}", params)
    return [attempt_from_row(r) for r in rows]


async def has_live_attempt(store: Store, phone: str) -> bool:
    """This number has an attempt in progress, in any campaign or direction."""
    row = await store.fetchone(
        f"SELECT 1 FROM call_attempts WHERE phone = ? AND status IN {_UNFINISHED_SQL} LIMIT 1",
        (phone,))
    return row is not None


async def in_flight(store: Store, campaign_id: int | None = None) -> int:
    if campaign_id is None:
        row = await store.fetchone(
            f"SELECT COUNT(*) AS n FROM call_attempts WHERE status IN {_UNFINISHED_SQL}")
    else:
        row = await store.fetchone(
            f"SELECT COUNT(*) AS n FROM call_attempts WHERE campaign_id = ?"
            f" AND status IN {_UNFINISHED_SQL}", (campaign_id,))
    return int(row["n"]) if row else 0


@dataclass(frozen=True, slots=True)
class Kpis:
    calls: int
    reached: int
    interested: int
    opted_out: int
    avg_duration_s: float | None


async def kpis(store: Store, campaign_id: int) -> Kpis:
    row = await store.fetchone(
        "SELECT COUNT(*) AS calls,"
        " SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS reached,"
        " SUM(CASE WHEN disposition = 'INTERESTED' THEN 1 ELSE 0 END) AS interested,"
        " SUM(CASE WHEN disposition = 'OPT_OUT' THEN 1 ELSE 0 END) AS opted_out,"
        " AVG(duration_s) AS avg_d"
        " FROM call_attempts WHERE campaign_id = ? AND status != 'intent'", (campaign_id,))
    if row is None:
        return Kpis(0, 0, 0, 0, None)
    return Kpis(int(row["calls"] or 0), int(row["reached"] or 0), int(row["interested"] or 0),
                int(row["opted_out"] or 0),
                float(row["avg_d"]) if row["avg_d"] is not None else None)


def _t(at: datetime | None) -> str | None:
    return iso(at) if at else None


def is_final_status(status: str) -> bool:
    try:
        return CallStatus(status).is_final
    except ValueError:
        return False


async def cancel_unsent(store: Store, call_id: str, contact_id: int, retry_at: datetime,
                        reason: str) -> None:
    """The transport proved nothing went out: close the attempt as 'not_sent' (kept for
    audit, never resent) and put the contact back in line on the same phone."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "UPDATE call_attempts SET status = 'not_sent', notes = ? WHERE id = ?"
            " AND status = 'intent'" + OWNED_SQL, (reason, call_id, *owner_params(store)))
        if cur.rowcount != 1:
            return  # not ours any more (a survivor took it over) or already settled
        await conn.execute(
            "UPDATE contacts SET status = 'pending', next_eligible_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'calling'", (iso(retry_at), iso(retry_at), contact_id))
        await conn.execute(
            "UPDATE callbacks SET status = 'pending' WHERE contact_id = ? AND status = 'dialing'",
            (contact_id,))


async def record_inbound(store: Store, call_id: str, phone: str, at: datetime) -> bool:
    """An inbound call gets an attempt row too, so its transcript and result have a home.
    `phone` is the caller in E.164 (or as given when it is no number). The row is live, so
    the dialer cannot call that number while they talk to us. False when an outbound
    attempt to them was already live: the call is still answered, its row is 'overlap'.
    On a cluster the row is this node's (id and epoch), as its outbound calls are: only
    this node closes it at its restart, and a survivor settles it if this node dies."""
    node, epoch = (store.node.node_id, store.node.epoch) if store.node else (None, None)
    sql = ("INSERT INTO call_attempts(id, phone, direction, status, answered_at, created_at,"
           " node_id, node_epoch) VALUES (?, ?, 'inbound', ?, ?, ?, ?, ?)")
    try:
        async with store.transaction(tag="inbound") as conn:
            await conn.execute(sql, (call_id, phone, "answered", iso(at), iso(at), node,
                                     epoch))
        return True
    except Exception as exc:
        if not is_unique_violation(exc, "call_attempts.phone"):
            raise
    await store.execute(sql, (call_id, phone, "overlap", iso(at), iso(at), node, epoch))
    return False


async def finish_inbound(store: Store, call_id: str, at: datetime) -> None:
    """The inbound call's session ended: close its row (no dialer owns inbound calls)."""
    row = await store.fetchone("SELECT answered_at FROM call_attempts WHERE id = ?", (call_id,))
    answered = parse_iso(row["answered_at"]) if row is not None else None
    duration = round((at - answered).total_seconds(), 3) if answered is not None else None
    await store.execute(
        "UPDATE call_attempts SET status = 'completed', hangup_at = ?, duration_s = ?"
        " WHERE id = ? AND direction = 'inbound' AND status IN ('answered', 'overlap')",
        (iso(at), duration, call_id))


async def close_stale_inbound(store: Store) -> int:
    """After a crash: inbound calls still open died with the daemon's sockets. Their end
    time is unknown (never the time of recovery), so hangup and duration stay NULL. On a
    cluster only this node's own (any earlier life of it): another node's callers are
    still talking to it, and closing their rows would free their numbers for dialling.
    Rows with no node were written by the version before inbound rows carried one: closed
    only while no other node's lease is live (during a rolling upgrade a node still on
    that version may be talking to their callers)."""
    mine = ""
    params: tuple[str, ...] = ()
    if store.node is not None:
        mine = (" AND (node_id = ? OR (node_id IS NULL AND NOT EXISTS (SELECT 1 FROM nodes n"
                f" WHERE n.node_id <> ? AND n.lease_until > {db_now_s(store.dialect)})))")
        params = (store.node.node_id, store.node.node_id)
    return await _drop_open_inbound(store, mine, params,
                                    "daemon restarted during the call; end time unknown")


async def close_orphan_inbound(store: Store, older_than_s: float) -> int:
    """Inbound rows with no node (written by the version before inbound rows carried
    one) answered longer ago than any inbound call may last: over, whoever held them.
    The node reconciler's pass runs this, so a rolling upgrade leaves no number blocked."""
    row = await store.fetchone(f"SELECT {db_now_s(store.dialect)} AS t")
    assert row is not None
    cutoff = iso(datetime.fromtimestamp(float(row["t"]) - older_than_s, UTC))
    return await _drop_open_inbound(store, " AND node_id IS NULL AND answered_at < ?",
                                    (cutoff,),
                                    "its node was lost during the call; end time unknown")


async def _drop_open_inbound(store: Store, where: str, params: tuple[str, ...],
                             note: str) -> int:
    """Open inbound rows (and `where`) closed `dropped`: their end time is unknown, so
    hangup and duration stay NULL."""
    async with store.transaction(tag="recover") as conn:
        cur = await conn.execute(
            "UPDATE call_attempts SET status = 'dropped', notes = ?"
            " WHERE direction = 'inbound' AND status IN ('answered', 'overlap')" + where,
            (note, *params))
        return int(cur.rowcount)
