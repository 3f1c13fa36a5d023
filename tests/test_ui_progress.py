"""The live-progress hub: one read of the store per interval for every viewer, a push only
when the snapshot changed, a slow viewer keeps only the newest snapshots, a failed read
does not end the stream, nobody watching means no reads, and close ends every stream."""

from __future__ import annotations

import asyncio
import logging

import pytest

from televox_pbx.clock import FakeClock
from televox_pbx.store import Store
from televox_pbx.web.ui.progress import ProgressHub


class ScriptedHub(ProgressHub):
    def __init__(self, store: Store, clock: FakeClock, script: list[str | None]) -> None:
        super().__init__(store, clock)
        self.script = script
        self.reads = 0
        self.read = asyncio.Event()

    async def snapshot(self) -> str:
        self.reads += 1
        self.read.set()
        item = self.script.pop(0)
        if item is None:
            raise RuntimeError("the store is busy")
        return item


async def _tick(hub: ScriptedHub, clock: FakeClock) -> None:
    """Let one interval pass and wait until the hub has read (no sleeping)."""
    hub.read.clear()
    await clock.advance(0.5)
    await asyncio.wait_for(hub.read.wait(), 5)
    await clock.advance(0)


def _drain(q: asyncio.Queue[str | None]) -> list[str | None]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


async def test_hub_pushes_changes_only(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    hub = ScriptedHub(store, clock, ["A", "A", None, "B", "C", "D", "E", "F", "G"])
    task = asyncio.create_task(hub.run())
    q1, last = hub.subscribe()
    assert last is None and await asyncio.wait_for(q1.get(), 5) == "A"
    await _tick(hub, clock)  # "A" again: nothing sent
    with caplog.at_level(logging.ERROR):
        await _tick(hub, clock)  # the read fails: logged, the hub goes on
    assert "campaign progress read failed" in caplog.text
    assert q1.empty()
    await _tick(hub, clock)
    assert _drain(q1) == ["B"]
    q2, last = hub.subscribe()  # a newcomer gets the latest at once
    assert last == "B" and hub.viewers == 2
    for _ in range(5):
        await _tick(hub, clock)
    assert _drain(q1)[-1] == "G"
    assert _drain(q2) == ["D", "E", "F", "G"]  # slow: only the newest four kept
    hub.unsubscribe(q1)
    hub.unsubscribe(q2)
    reads = hub.reads
    await clock.advance(5)  # nobody watches: no reads
    assert hub.reads == reads
    q3, _ = hub.subscribe()
    hub.close()
    assert _drain(q3)[-1] is None  # the stream ends
    await asyncio.wait_for(task, 5)
