"""The 20 ms pacer and its output queue, driven by a FakeClock (no real sleeping)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from televox_pbx.audiosocket.pacer import OutputQueue, Pacer
from televox_pbx.audiosocket.session import AudioOutput, FrameSent
from televox_pbx.clock import FakeClock


class LateClock(FakeClock):
    """Every sleep wakes `late` seconds after asked; one sleep can be made very late."""

    def __init__(self, late: float = 0.0) -> None:
        super().__init__()
        self.late = late
        self.stall_once = 0.0

    async def sleep(self, seconds: float) -> None:
        extra, self.stall_once = self.stall_once, 0.0
        await super().sleep(seconds + self.late + extra)


class Rig:
    def __init__(self, clock: FakeClock, **kw: int) -> None:
        self.clock = clock
        self.queue = OutputQueue()
        self.sent: list[bytes] = []
        self.frames: list[FrameSent] = []
        self.queue.add_listener(self.frames.append)
        self.pacer = Pacer(self.queue, self.sent.append, clock, **kw)


@contextlib.asynccontextmanager
async def running(clock: FakeClock | None = None, **kw: int) -> AsyncIterator[Rig]:
    rig = Rig(clock or FakeClock(), **kw)
    task = asyncio.create_task(rig.pacer.run())
    await asyncio.sleep(0)
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tone(n_bytes: int, value: int = 0x1234) -> bytes:
    return value.to_bytes(2, "little") * (n_bytes // 2)


async def test_first_frame_is_immediate_then_one_per_20ms() -> None:
    async with running() as rig:
        assert len(rig.sent) == 1
        await rig.clock.advance(0.019)
        assert len(rig.sent) == 1
        await rig.clock.advance(0.001)
        assert len(rig.sent) == 2
        await rig.clock.advance(1.0)
        assert len(rig.sent) == 52
        assert all(len(f) == 320 for f in rig.sent)


async def test_no_drift_over_10000_frames() -> None:
    async with running() as rig:
        await rig.clock.advance(200.0)
    assert len(rig.frames) == 10_001
    for n, fs in enumerate(rig.frames):
        assert fs.seq == n
        assert fs.scheduled == n * 0.02
        assert fs.t == fs.scheduled
    assert rig.pacer.stats.resyncs == 0


async def test_no_drift_when_every_wakeup_is_late_and_time_moves_unevenly() -> None:
    async with running(LateClock(late=0.004)) as rig:
        for _ in range(200_000 // 13 + 1):  # ~200 s in uneven 13 ms steps
            await rig.clock.advance(0.013)
        now = rig.clock.monotonic()
    # Lateness never accumulates: the frame count follows the schedule, not the sleeps.
    expected = int((now - 0.004) / 0.02) + 1
    assert abs(len(rig.frames) - expected) <= 1
    assert len(rig.frames) > 10_000
    assert max(f.t - f.scheduled for f in rig.frames) < 0.02
    assert rig.pacer.stats.resyncs == 0


async def test_small_lag_is_caught_up_without_skipping() -> None:
    clock = LateClock()
    async with running(clock) as rig:
        await clock.advance(0.1)  # 6 frames: t=0..0.1
        clock.stall_once = 0.05  # next wake-up 2.5 frames late
        await clock.advance(0.5)
    assert rig.pacer.stats.resyncs == 0
    assert len(rig.frames) == int(0.6 / 0.02 + 1e-9) + 1  # every slot got its frame


async def test_big_stall_resyncs_instead_of_bursting() -> None:
    clock = LateClock()
    async with running(clock, max_lag_frames=5) as rig:
        await clock.advance(0.1)
        clock.stall_once = 0.5  # 25 slots late
        await clock.advance(1.0)
    stats = rig.pacer.stats
    assert stats.resyncs == 1
    assert stats.skipped_slots >= 20
    # No burst: at most one frame per instant, and slots stay on the 20 ms grid.
    times = [f.t for f in rig.frames]
    assert len(times) == len(set(times))
    assert all(abs(f.scheduled / 0.02 - round(f.scheduled / 0.02)) < 1e-6 for f in rig.frames)
    assert len(rig.frames) < int(1.1 / 0.02) - 15


async def test_silence_when_nothing_is_queued() -> None:
    async with running() as rig:
        await rig.clock.advance(0.1)
    assert rig.sent == [bytes(320)] * 6
    assert all(f.silent for f in rig.frames)


async def test_reframes_arbitrary_lengths_and_pads_the_tail() -> None:
    async with running() as rig:
        end1 = rig.queue.enqueue(tone(500, 1))
        end2 = rig.queue.enqueue(tone(500, 2))
        assert (end1, end2) == (500, 1000)
        assert rig.queue.queued_seconds == pytest.approx(1000 / 16000)
        await rig.clock.advance(0.1)
    audio = b"".join(rig.sent[1:5])
    assert audio[:1000] == tone(500, 1) + tone(500, 2)
    assert audio[1000:] == bytes(280)  # padding of the last partial frame
    assert [f.audio_bytes for f in rig.frames] == [0, 320, 320, 320, 40, 0]
    assert [f.position for f in rig.frames] == [0, 320, 640, 960, 1000, 1000]
    assert rig.queue.played_position == end2


async def test_clear_drops_unsent_audio_and_reports_ms() -> None:
    async with running() as rig:
        end = rig.queue.enqueue(tone(16000))  # 1 s
        await rig.clock.advance(0.2)  # 10 frames of audio played
        dropped_ms = rig.queue.clear()
        assert dropped_ms == pytest.approx(800.0)
        assert rig.queue.queued_seconds == 0
        assert rig.queue.played_position == end
        await rig.clock.advance(0.1)
    audio_frames = [f for f in rig.frames if not f.silent]
    assert len(audio_frames) == 10
    assert all(f.silent for f in rig.frames[11:])


async def test_wait_drained() -> None:
    async with running() as rig:
        rig.queue.enqueue(tone(640))
        waiter = asyncio.create_task(rig.queue.wait_drained())
        await rig.clock.advance(0.02)
        assert not waiter.done()
        await rig.clock.advance(0.02)
        assert waiter.done()
        # clear() also releases waiters
        rig.queue.enqueue(tone(3200))
        waiter = asyncio.create_task(rig.queue.wait_drained())
        await asyncio.sleep(0)
        assert not waiter.done()
        rig.queue.clear()
        await asyncio.sleep(0)
        assert waiter.done()


async def test_first_audio_time_is_visible_to_listeners() -> None:
    async with running() as rig:
        await rig.clock.advance(0.05)
        rig.queue.enqueue(tone(320))
        await rig.clock.advance(0.05)
    first = next(f for f in rig.frames if not f.silent)
    assert first.t == pytest.approx(0.06)


async def test_listener_errors_are_contained_and_listeners_removable() -> None:
    calls: list[int] = []

    def bad(_: FrameSent) -> None:
        raise RuntimeError("boom")

    async with running() as rig:
        rig.queue.add_listener(bad)
        remove = rig.queue.add_listener(lambda f: calls.append(f.seq))
        await rig.clock.advance(0.04)
        remove()
        await rig.clock.advance(0.04)
    assert calls == [1, 2]
    assert len(rig.frames) == 5


def test_queue_rules() -> None:
    q: AudioOutput = OutputQueue()
    with pytest.raises(ValueError):
        q.enqueue(b"abc")
    assert q.enqueue(b"") == 0
    assert q.clear() == 0.0
    oq = OutputQueue()
    oq.enqueue(tone(640))
    oq.take_frame()
    oq.close()
    assert oq.played_position == 320  # what was really sent, not what was queued
    assert oq.enqueue(tone(320)) == 640  # ignored once the call is down
    assert oq.take_frame() == (bytes(320), 0)
