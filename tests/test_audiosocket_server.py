"""The AudioSocket server over real TCP on 127.0.0.1, with a minimal Asterisk-side leg."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from televox_pbx.audiosocket.codec import (
    AUDIO_KINDS,
    Frame,
    FrameParser,
    Kind,
    encode,
    encode_audio,
    encode_dtmf,
    encode_error,
    encode_hangup,
    encode_uuid,
)
from televox_pbx.audiosocket.server import AudioSocketServer, ServerOptions
from televox_pbx.audiosocket.session import (
    AudioIn,
    CallAudio,
    Dtmf,
    Hangup,
    HangupReason,
    InEvent,
)
from televox_pbx.clock import Clock, FakeClock, SystemClock

LIMIT = 5.0  # safety net for awaits in tests; nothing should come near it


class Leg:
    """What Asterisk's AudioSocket app does on the wire, minus the channel."""

    opened: ClassVar[list[Leg]] = []  # closed after each test by the autouse fixture

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = FrameParser()
        self.frames: list[Frame] = []

    @classmethod
    async def connect(cls, port: int, call_id: str | None = None, *,
                      rcvbuf: int | None = None) -> Leg:
        sock = None
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        leg = cls(reader, writer)
        cls.opened.append(leg)
        if call_id is not None:
            leg.send(encode_uuid(call_id))
        return leg

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def send_audio(self, n: int = 1, size: int = 320, value: int = 0x0101) -> None:
        for _ in range(n):
            self.send(encode_audio(value.to_bytes(2, "little") * (size // 2)))

    async def read_until_closed(self) -> list[Frame]:
        async def loop() -> None:
            while data := await self.reader.read(65536):
                self.frames += self.parser.feed(data)
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(loop(), LIMIT)
        return self.frames

    async def read_frames(self, n: int) -> list[Frame]:
        async def loop() -> None:
            while len(self.frames) < n:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.frames += self.parser.feed(data)
        await asyncio.wait_for(loop(), LIMIT)
        return self.frames

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
async def close_legs() -> AsyncIterator[None]:
    yield
    for leg in Leg.opened:
        leg.close()
        with contextlib.suppress(ConnectionError):
            await leg.writer.wait_closed()
    Leg.opened.clear()


class Recorder:
    """A session that records what it sees; behaviour is plugged in per test."""

    def __init__(self, then: Callable[[CallAudio], Awaitable[None]] | None = None) -> None:
        self.events: list[InEvent] = []
        self.calls: list[CallAudio] = []
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.then = then

    async def __call__(self, call: CallAudio) -> None:
        self.calls.append(call)
        self.started.set()
        try:
            if self.then is not None:
                await self.then(call)
            async for ev in call.incoming():
                self.events.append(ev)
        finally:
            self.done.set()

    @property
    def audio(self) -> bytes:
        return b"".join(e.pcm for e in self.events if isinstance(e, AudioIn))

    @property
    def hangup(self) -> Hangup:
        last = self.events[-1]
        assert isinstance(last, Hangup)
        return last


@contextlib.asynccontextmanager
async def serving(clock: Clock | None = None, **opts: Any) -> AsyncIterator[AudioSocketServer]:
    server = AudioSocketServer(clock or SystemClock(), options=ServerOptions(**opts))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class WatchedClock(FakeClock):
    """A FakeClock that lets a test wait until the code under test has started sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.requested: list[float] = []
        self._bump = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        self._bump.set()
        await super().sleep(seconds)

    async def _until(self, cond: Callable[[], bool]) -> None:
        async def loop() -> None:
            while not cond():
                self._bump.clear()
                await self._bump.wait()
        await asyncio.wait_for(loop(), LIMIT)

    async def sleeps_reach(self, n: int) -> None:
        await self._until(lambda: len(self.requested) >= n)

    async def slept_for(self, seconds: float) -> None:
        """Until some task has started a sleep of exactly `seconds`."""
        await self._until(lambda: seconds in self.requested)


def new_id() -> str:
    return str(uuid.uuid4())


def sent_kinds(frames: list[Frame]) -> set[Kind]:
    return {f.kind for f in frames}


async def test_outbound_call_audio_both_ways_and_local_hangup() -> None:
    async def speak_then_hang_up(call: CallAudio) -> None:
        got: list[InEvent] = []
        async for ev in call.incoming():
            got.append(ev)
            if len(got) == 5:
                break
        rec.events += got
        call.output.enqueue(b"\x22\x11" * 800)  # 100 ms
        await call.hangup(drain=True)

    rec = Recorder(speak_then_hang_up)
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        leg.send_audio(3)
        leg.send_audio(2, size=480, value=0x0202)
        frames = await leg.read_until_closed()
        await asyncio.wait_for(rec.done.wait(), LIMIT)
        call = rec.calls[0]
        assert call.call_id == cid and not call.inbound and call.sample_rate == 8000
        assert call.hangup_reason == HangupReason.LOCAL
        stats = server.stats()
    assert rec.audio == b"\x01\x01" * 480 + b"\x02\x02" * 480
    # We only ever send audio and, last, one hangup; every audio frame is 20 ms.
    assert frames[-1] == Frame(Kind.HANGUP, b"")
    assert all(f.kind == Kind.AUDIO and len(f.payload) == 320 for f in frames[:-1])
    audio = b"".join(f.payload for f in frames[:-1])
    assert b"\x22\x11" * 800 in audio
    assert (stats.accepted, stats.active, stats.ended_by_reason) == (1, 0, {"local": 1})


async def test_peer_hangup_dtmf_and_rates_reach_the_session() -> None:
    rec = Recorder()
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        leg.send(encode_dtmf("1") + encode_audio(bytes(640), Kind.AUDIO_16K) + encode_hangup())
        await asyncio.wait_for(rec.done.wait(), LIMIT)
        await leg.read_until_closed()
    assert isinstance(rec.events[0], Dtmf) and rec.events[0].digit == "1"
    assert isinstance(rec.events[1], AudioIn) and rec.events[1].sample_rate == 16000
    assert rec.calls[0].sample_rate == 16000
    assert rec.hangup.reason == HangupReason.PEER_HANGUP
    assert Kind.HANGUP not in sent_kinds(leg.frames)  # the peer hung up; we just close


@pytest.mark.parametrize(("how", "reasons"), [
    ("eof", {HangupReason.PEER_EOF}),
    ("half-close", {HangupReason.PEER_EOF}),
    ("reset", {HangupReason.PEER_RESET, HangupReason.PEER_EOF}),
    ("error-frame", {HangupReason.PEER_ERROR}),
    ("second-uuid", {HangupReason.PROTOCOL_ERROR}),
    ("mid-frame", {HangupReason.PROTOCOL_ERROR}),
])
async def test_every_way_a_call_ends(how: str, reasons: set[HangupReason]) -> None:
    rec = Recorder()
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        leg.send_audio(1)
        await leg.read_frames(1)
        if how == "eof":
            leg.close()
        elif how == "half-close":
            leg.writer.write_eof()
            await leg.read_until_closed()  # the server closes its side too
        elif how == "reset":
            sock = leg.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            leg.close()
        elif how == "error-frame":
            leg.send(encode_error(0x02))
        elif how == "second-uuid":
            leg.send(encode_uuid(new_id()))
        elif how == "mid-frame":
            leg.send(encode_audio(bytes(320))[:50])
            await leg.writer.drain()
            leg.close()
        await asyncio.wait_for(rec.done.wait(), LIMIT)
    assert rec.hangup.reason in reasons
    if how == "error-frame":
        assert rec.hangup.error_code == 0x02
    assert len(rec.audio) == 320


async def test_inbound_call_announced_just_after_connect() -> None:
    rec = Recorder()
    async with serving() as server:
        server.router.inbound_handler = rec
        cid = new_id()
        leg = await Leg.connect(server.port, cid)
        server.announce_inbound(cid, "+15550100999")  # races the socket, as in real life
        await asyncio.wait_for(rec.started.wait(), LIMIT)
        call = rec.calls[0]
        assert call.inbound and call.caller_id == "+15550100999"
        leg.send(encode_hangup())
        await asyncio.wait_for(rec.done.wait(), LIMIT)


async def test_unknown_uuid_is_refused_after_the_grace_period(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = WatchedClock()
    async with serving(clock, grace_s=1.0) as server:
        cid = new_id()
        leg = await Leg.connect(server.port, cid)
        await clock.sleeps_reach(2)  # the UUID timeout, then the grace period
        await clock.advance(0.99)
        assert server.stats().refused == 0
        await clock.advance(0.01)
        assert await leg.read_until_closed() == []
        assert server.stats().refused_by_reason == {"unknown": 1}
    refusal = next(r for r in caplog.records if "refused" in r.getMessage())
    assert getattr(refusal, "call_id", None) == cid


async def test_replayed_uuid_is_refused() -> None:
    rec = Recorder()
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        first = await Leg.connect(server.port, cid)
        await asyncio.wait_for(rec.started.wait(), LIMIT)
        again = await Leg.connect(server.port, cid)
        assert await again.read_until_closed() == []
        assert server.stats().refused_by_reason == {"replay": 1}
        assert server.stats().active == 1
        first.send(encode_hangup())
        await asyncio.wait_for(rec.done.wait(), LIMIT)
        later = await Leg.connect(server.port, cid)  # also after the call finished
        assert await later.read_until_closed() == []
        assert server.stats().refused == 2


async def test_no_uuid_first_or_no_traffic_is_refused() -> None:
    clock = WatchedClock()
    async with serving(clock, uuid_timeout_s=5.0) as server:
        audio_first = await Leg.connect(server.port)
        audio_first.send_audio(1)
        silent = await Leg.connect(server.port)
        await clock.sleeps_reach(2)  # both are waiting for their UUID
        assert await audio_first.read_until_closed() == []
        await clock.advance(5.0)
        assert await silent.read_until_closed() == []
        assert server.stats().refused_by_reason == {"protocol_error": 1, "no_uuid": 1}


async def test_idle_call_is_hung_up() -> None:
    clock = WatchedClock()
    rec = Recorder()
    async with serving(clock, idle_timeout_s=30.0) as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        await clock.slept_for(30.0)  # the idle watchdog is armed
        await clock.advance(29.0)
        assert not rec.done.is_set()
        await clock.advance(1.0)
        frames = await leg.read_until_closed()
        await asyncio.wait_for(rec.done.wait(), LIMIT)
    assert rec.hangup.reason == HangupReason.IDLE_TIMEOUT
    assert frames[-1].kind == Kind.HANGUP
    # Silence kept flowing the whole time (the frame due at exactly 30 s may or may not go).
    assert 1500 <= len(frames) - 1 <= 1501


async def test_bad_connections_do_not_disturb_good_ones() -> None:
    good = [Recorder() for _ in range(4)]
    bad = [Recorder() for _ in range(4)]
    async with serving() as server:
        ids = [new_id() for _ in range(8)]
        for cid, rec in zip(ids, good + bad, strict=True):
            server.expect(cid, rec)
        legs = [await Leg.connect(server.port, cid) for cid in ids]
        for rec in good + bad:
            await asyncio.wait_for(rec.started.wait(), LIMIT)
        assert server.stats().active == 8
        b = legs[4:]
        b[0].send(b"\x42\x00\x00")  # unknown kind
        b[1].send(b"\x10\x00\x03abc")  # odd audio length
        b[2].send(bytes((i * 7 + 3) % 256 for i in range(65536)))  # 64 KiB of garbage
        b[3].send(b"\x10\x01\x40" + bytes(100))  # then closed mid-frame
        await b[3].writer.drain()
        b[3].close()
        for rec in bad:
            await asyncio.wait_for(rec.done.wait(), LIMIT)
        for leg in legs[:4]:
            leg.send_audio(10)
            await leg.read_frames(5)
        assert server.stats().active == 4
        for leg in legs[:4]:
            leg.send(encode_hangup())
        for rec in good:
            await asyncio.wait_for(rec.done.wait(), LIMIT)
        await server.wait_idle()
        stats = server.stats()
    assert all(r.hangup.reason == HangupReason.PROTOCOL_ERROR for r in bad)
    assert all(len(r.audio) == 3200 and r.hangup.reason == HangupReason.PEER_HANGUP
               for r in good)
    assert stats.ended_by_reason == {"protocol_error": 4, "peer_hangup": 4}


async def test_a_failing_session_ends_only_its_call(caplog: pytest.LogCaptureFixture) -> None:
    async def explode(call: CallAudio) -> None:
        raise RuntimeError("bug in the session")

    survivor = Recorder()
    async with serving() as server:
        doomed_id, ok_id = new_id(), new_id()
        server.expect(doomed_id, Recorder(explode))
        server.expect(ok_id, survivor)
        ok = await Leg.connect(server.port, ok_id)
        doomed = await Leg.connect(server.port, doomed_id)
        frames = await doomed.read_until_closed()
        assert frames[-1].kind == Kind.HANGUP  # the call is hung up properly
        ok.send_audio(2)
        await ok.read_frames(3)
        ok.send(encode_hangup())
        await asyncio.wait_for(survivor.done.wait(), LIMIT)
        await server.wait_idle()
        assert server.stats().session_errors == 1
    failure = next(r for r in caplog.records if r.getMessage() == "session failed")
    assert failure.exc_info is not None and failure.levelno == logging.ERROR
    assert len(survivor.audio) == 640


async def test_shutdown_hangs_up_live_calls() -> None:
    rec = Recorder()
    server = AudioSocketServer(SystemClock())
    await server.start()
    port = server.port
    cid = new_id()
    server.expect(cid, rec)
    leg = await Leg.connect(port, cid)
    await asyncio.wait_for(rec.started.wait(), LIMIT)
    await server.close()
    frames = await leg.read_until_closed()
    assert frames[-1].kind == Kind.HANGUP
    assert rec.calls[0].hangup_reason == HangupReason.SHUTDOWN
    with pytest.raises(ConnectionError):
        await Leg.connect(port, new_id())  # no longer accepting


async def test_recording_tap_sees_both_directions() -> None:
    inbound: list[tuple[int, float]] = []
    outbound: list[tuple[bytes, float]] = []
    tapped_out, tapped_in = asyncio.Event(), asyncio.Event()

    class Tap:
        def on_inbound(self, pcm: bytes, sample_rate: int, t: float) -> None:
            inbound.append((len(pcm), t))
            if len(inbound) == 3:
                tapped_in.set()

        def on_outbound(self, pcm: bytes, t: float) -> None:
            outbound.append((pcm, t))
            if len(outbound) == 2:
                tapped_out.set()

    async def with_tap(call: CallAudio) -> None:
        call.set_recording_tap(Tap())
        call.output.enqueue(b"\x05\x00" * 160)

    rec = Recorder(with_tap)
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        await asyncio.wait_for(rec.started.wait(), LIMIT)
        await asyncio.wait_for(tapped_out.wait(), LIMIT)  # installed; the pacer is going
        leg.send_audio(3)
        await asyncio.wait_for(tapped_in.wait(), LIMIT)
        leg.send(encode_hangup())
        await asyncio.wait_for(rec.done.wait(), LIMIT)
    assert [n for n, _ in inbound] == [320, 320, 320]
    assert any(pcm == b"\x05\x00" * 160 for pcm, _ in outbound)
    assert all(len(pcm) == 320 for pcm, _ in outbound)


async def test_real_time_pacing_roughly_50_frames_per_second() -> None:
    rec = Recorder()
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        await leg.read_frames(1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await leg.read_frames(16)  # 15 more frames: 300 ms on the pacer's schedule
        elapsed = loop.time() - t0
        leg.send(encode_hangup())
        await asyncio.wait_for(rec.done.wait(), LIMIT)
    assert 0.2 < elapsed < 1.5  # loose: proves pacing, not a timing benchmark
    assert sent_kinds(leg.frames) <= AUDIO_KINDS | {Kind.HANGUP}


async def test_a_peer_that_stops_reading_is_dropped() -> None:
    clock = FakeClock()
    rec = Recorder()
    async with serving(clock, idle_timeout_s=10_000.0, max_write_buffer=8_000) as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid, rcvbuf=4096)
        await asyncio.wait_for(rec.started.wait(), LIMIT)
        for _ in range(20):  # up to 20 MB of audio nobody reads, until kernel buffers fill
            await clock.advance(60.0)
            if rec.done.is_set():
                break
        await asyncio.wait_for(rec.done.wait(), LIMIT)
        leg.close()
    assert rec.hangup.reason == HangupReason.PEER_STALLED


def test_writer_cannot_send_other_kinds() -> None:
    from televox_pbx.audiosocket.connection import FrameWriter
    public = {name for name in vars(FrameWriter) if not name.startswith("_")}
    assert public == {"send_audio", "send_hangup", "close", "abort"}
    assert encode(Kind.AUDIO, b"\x00\x00")[0] == 0x10


async def test_staged_shutdown_lets_calls_finish_within_grace() -> None:
    clock = WatchedClock()
    ending, lingering = Recorder(), Recorder()
    server = AudioSocketServer(clock)
    await server.start()
    ids = new_id(), new_id()
    server.expect(ids[0], ending)
    server.expect(ids[1], lingering)
    legs = [await Leg.connect(server.port, cid) for cid in ids]
    for rec in (ending, lingering):
        await asyncio.wait_for(rec.started.wait(), LIMIT)
    closing = asyncio.create_task(server.close(grace_s=10.0))
    await clock.slept_for(10.0)
    await legs[0].read_frames(1)
    legs[0].send(encode_hangup())  # this call ends by itself during the grace period
    await asyncio.wait_for(ending.done.wait(), LIMIT)
    await clock.advance(9.9)
    assert not closing.done()
    await clock.advance(0.1)
    await asyncio.wait_for(closing, LIMIT)
    assert ending.hangup.reason == HangupReason.PEER_HANGUP
    assert lingering.hangup.reason == HangupReason.SHUTDOWN
    assert (await legs[1].read_until_closed())[-1].kind == Kind.HANGUP


async def test_a_session_that_never_returns_is_cancelled_after_post_call_timeout() -> None:
    clock = WatchedClock()
    cancelled = asyncio.Event()

    async def stubborn(call: CallAudio) -> None:
        async for _ in call.incoming():
            pass
        try:
            await asyncio.Event().wait()  # "post-call work" that never ends
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with serving(clock, post_hangup_timeout_s=120.0) as server:
        cid = new_id()
        server.expect(cid, stubborn)
        leg = await Leg.connect(server.port, cid)
        leg.send(encode_hangup())
        await leg.read_until_closed()
        await clock.slept_for(120.0)
        await clock.advance(119.0)
        assert server.stats().active == 1
        await clock.advance(1.0)
        await asyncio.wait_for(cancelled.wait(), LIMIT)
        await server.wait_idle()
        assert server.stats().ended_by_reason == {"peer_hangup": 1}


async def test_a_slow_session_loses_the_oldest_audio_not_the_hangup() -> None:
    gate = asyncio.Event()

    async def slow(call: CallAudio) -> None:
        await gate.wait()

    rec = Recorder(slow)
    async with serving(inbox_cap=10) as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        for i in range(50):
            leg.send(encode_audio(i.to_bytes(2, "little") * 160))
        leg.send(encode_hangup())
        await leg.read_until_closed()
        gate.set()
        await asyncio.wait_for(rec.done.wait(), LIMIT)
    assert len(rec.events) == 10
    assert rec.hangup.reason == HangupReason.PEER_HANGUP
    first = rec.events[0]
    assert isinstance(first, AudioIn) and first.pcm[:2] == (41).to_bytes(2, "little")


async def test_a_broken_recording_tap_does_not_end_the_call(
        caplog: pytest.LogCaptureFixture) -> None:
    class BadTap:
        def on_inbound(self, pcm: bytes, sample_rate: int, t: float) -> None:
            raise OSError("disk full")

        def on_outbound(self, pcm: bytes, t: float) -> None:
            return None

    async def with_tap(call: CallAudio) -> None:
        call.set_recording_tap(BadTap())

    rec = Recorder(with_tap)
    async with serving() as server:
        cid = new_id()
        server.expect(cid, rec)
        leg = await Leg.connect(server.port, cid)
        await asyncio.wait_for(rec.started.wait(), LIMIT)
        leg.send_audio(3)
        leg.send(encode_hangup())
        await asyncio.wait_for(rec.done.wait(), LIMIT)
    assert len(rec.audio) == 960 and rec.hangup.reason == HangupReason.PEER_HANGUP
    assert any("recording tap failed" in r.getMessage() for r in caplog.records)


def test_from_settings() -> None:
    from televox_pbx.config.settings import AudioSocketSettings
    server = AudioSocketServer.from_settings(AudioSocketSettings(port=19092), SystemClock())
    assert (server._host, server._port) == ("127.0.0.1", 19092)
