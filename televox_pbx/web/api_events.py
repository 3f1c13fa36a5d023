"""The AMI event log: a query with filters, and a live stream (Server-Sent Events)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from televox_pbx.store.events import EventRow, query_events
from televox_pbx.store.id_follow import IdFollower
from televox_pbx.store.timefmt import iso
from televox_pbx.web.context import ctx
from televox_pbx.web.errors import ApiError
from televox_pbx.web.routes import Param, Route, int_param, json_response, query_int, query_str

TAG = "events"
# How often the stream looks for new rows (the event log writes in ~0.25 s batches).
STREAM_POLL_S = 0.5
STREAM_HEARTBEAT_S = 15.0


def _filters(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    if request.query.get("event"):
        out["Event"] = request.query["event"]
    for item in request.query.getall("filter", []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(422, "invalid_parameter", f"filter {item[:60]!r}: KEY=VALUE")
        out[key] = value
    return out


def _since(request: web.Request) -> datetime | None:
    raw = request.query.get("since")
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_parameter", "since: an ISO time") from None
    if at.tzinfo is None:
        raise ApiError(422, "invalid_parameter", "since: needs a UTC offset")
    return at


def _event(r: EventRow) -> dict[str, Any]:
    return {"id": r.id, "received_at": iso(r.received_at), "event": r.event,
            "call_id": r.call_id, "fields": r.fields}


async def _query(request: web.Request, *, after_id: int | None, limit: int,
                 newest: bool) -> list[EventRow]:
    c = ctx(request)
    try:
        return await query_events(c.store, since=_since(request), after_id=after_id,
                                  call_id=request.query.get("call_id") or None,
                                  filters=_filters(request), limit=limit, newest=newest)
    except ValueError as exc:  # a filter key that is not a field name
        raise ApiError(422, "invalid_parameter", str(exc)) from None


async def events_query(request: web.Request) -> web.Response:
    after = int_param(request, "after_id", 0, 0, 2**62) or None
    limit = int_param(request, "limit", 100, 1, 5000)
    order = request.query.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise ApiError(422, "invalid_parameter", "order: newest or oldest")
    rows = await _query(request, after_id=after, limit=limit, newest=order == "newest")
    return json_response({"events": [_event(r) for r in rows],
                          "last_id": rows[-1].id if rows else after})


async def events_stream(request: web.Request) -> web.StreamResponse:
    """New events as they are logged; resumes after Last-Event-ID (or after_id). Without
    either it starts at the newest event, so a viewer sees only what happens next."""
    c = ctx(request)
    last = request.headers.get("Last-Event-ID") or request.query.get("after_id")
    if last is not None and not last.isdigit():
        raise ApiError(422, "invalid_parameter", "after_id: an event id")
    cursor = int(last) if last is not None else None
    if cursor is None:
        newest = await query_events(c.store, limit=1, newest=True)
        cursor = (newest[-1].id or 0) if newest else 0
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    quiet = 0.0
    # Several nodes write the log: never stream past an id whose commit may still come.
    follow = IdFollower(c.store, "ami_events", c.clock)
    with contextlib.suppress(ConnectionResetError):
        await resp.write(b": connected\n\n")
        while not c.closing:
            upto = await follow.safe_upto(cursor)
            rows = await _query(request, after_id=cursor, limit=500, newest=False)
            whole = len(rows) < 500  # every match after the cursor is in hand
            if upto is not None:
                rows = [r for r in rows if (r.id or 0) <= upto]
            for r in rows:
                data = json.dumps(_event(r), ensure_ascii=False, default=str)
                await resp.write(f"id: {r.id}\nevent: ami\ndata: {data}\n\n".encode())
                cursor = r.id or cursor
            if upto is not None and whole:
                cursor = max(cursor, upto)  # past the rows the filters did not match
            quiet = 0.0 if rows else quiet + STREAM_POLL_S
            if quiet >= STREAM_HEARTBEAT_S:
                await resp.write(b": keep-alive\n\n")
                quiet = 0.0
            if not rows:
                await c.clock.sleep(STREAM_POLL_S)
    return resp


_COMMON = (query_str("event", "event name, e.g. Hangup"),
           query_str("call_id", "the attempt UUID"),
           Param("filter", "query", {"type": "array", "items": {"type": "string"}},
                 "KEY=VALUE on the event's fields, repeatable"),
           Param("since", "query", {"type": "string", "format": "date-time"}))

ROUTES: list[Route] = [
    Route("GET", "/events", events_query, "Query the AMI event log", TAG,
          params=(*_COMMON, query_int("after_id", 0, 0, 2**62),
                  query_int("limit", 100, 1, 5000),
                  query_str("order", "newest: the last matches; oldest: the first",
                            ("newest", "oldest"))),
          ok_schema={"type": "object", "required": ["events"]}, errors=(422,)),
    Route("GET", "/events/stream", events_stream,
          "Live AMI events as Server-Sent Events (resume with Last-Event-ID)", TAG,
          params=(*_COMMON, query_int("after_id", 0, 0, 2**62)),
          ok_type="text/event-stream", ok_schema={"type": "string"}, errors=(422,)),
]
