"""The AMI actions in flight, and the replies that settle them.

Sans-IO, like the codec: no socket and no task here. The client writes an action and
awaits the future it gets from `add`; every message its reader parses passes through
`settle`, which completes the action the message's ActionID names: a plain action with its
Response, a list action (CoreShowChannels, Status) with its Response and the events up to
its complete event. Apart from the client so that this matching reads on its own, without
the connection handling around it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable

from televox_pbx.ami.codec import AmiMessage
from televox_pbx.ami.errors import AmiConnectionLost

Reply = tuple[AmiMessage, list[AmiMessage]]


class _Pending:
    """One action awaiting its Response (and, for list actions, its events)."""

    __slots__ = ("complete_event", "events", "future", "response")

    def __init__(self, complete_event: str | None) -> None:
        self.future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.complete_event = complete_event.lower() if complete_event else None
        self.response: AmiMessage | None = None
        self.events: list[AmiMessage] = []


class InFlight:
    def __init__(self) -> None:
        self._ids = itertools.count(1)  # one sequence for every ActionID the client makes
        self._pending: dict[str, _Pending] = {}

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def with_id(self, fields: Iterable[tuple[str, str]],
                ) -> tuple[str, list[tuple[str, str]]]:
        """The action's ActionID and fields, with an ActionID added when it has none.
        ValueError when an action with that ActionID is already in flight."""
        fields = list(fields)
        aid = next((v for k, v in fields if k.lower() == "actionid"), None)
        if aid is None:
            aid = self.next_id("tv")
            fields = [*fields, ("ActionID", aid)]
        if aid in self._pending:
            raise ValueError(f"ActionID {aid!r} already in flight")
        return aid, fields

    def add(self, aid: str, complete_event: str | None) -> asyncio.Future[Reply]:
        """Track the action `aid`; its future completes with its Response (and, with a
        `complete_event`, the events before that event)."""
        pending = _Pending(complete_event)
        self._pending[aid] = pending
        return pending.future

    def discard(self, aid: str, future: asyncio.Future[Reply]) -> None:
        """Stop tracking `aid` if it is still the action that `future` belongs to."""
        pending = self._pending.get(aid)
        if pending is not None and pending.future is future:
            del self._pending[aid]

    def fail_all(self, reason: str) -> None:
        """The connection is gone: nothing in flight will be answered."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(AmiConnectionLost(reason))
        self._pending.clear()

    def settle(self, msg: AmiMessage) -> None:
        """Match one message from the server to the action it answers, if any."""
        aid = msg.action_id or ""
        pending = self._pending.get(aid)
        if pending is None:
            return
        if msg.event is None:
            if pending.complete_event is None or (msg.response or "").lower() == "error":
                del self._pending[aid]
                if not pending.future.done():
                    pending.future.set_result((msg, []))
            else:
                pending.response = msg
            return
        if pending.complete_event is None:
            return
        if msg.event.lower() == pending.complete_event:
            del self._pending[aid]
            if not pending.future.done() and pending.response is not None:
                pending.future.set_result((pending.response, pending.events))
        else:
            pending.events.append(msg)
