"""AudioSocket benchmarks: codec throughput, and pacer accuracy under concurrent calls.

Usage: .venv/bin/python bench/bench_audiosocket.py [--calls 20,100] [--seconds 3]
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import uuid

from televox_pbx.audiosocket.codec import (
    FrameParser,
    encode_audio,
    encode_hangup,
    encode_uuid,
)
from televox_pbx.audiosocket.server import AudioSocketServer
from televox_pbx.audiosocket.session import AudioIn, CallAudio, FrameSent
from televox_pbx.clock import SystemClock


def bench_codec() -> None:
    frame = encode_audio(bytes(320))
    stream = frame * 50_000  # 1000 s of audio
    for chunk in (323, 4096, 65536):
        parser = FrameParser()
        t0 = time.perf_counter()
        n = 0
        for i in range(0, len(stream), chunk):
            n += len(parser.feed(stream[i:i + chunk]))
        dt = time.perf_counter() - t0
        print(f"codec parse  chunk={chunk:>5}  {n / dt:>12,.0f} frames/s  "
              f"{len(stream) / dt / 1e6:8.1f} MB/s")
    t0 = time.perf_counter()
    pcm = bytes(320)
    for _ in range(100_000):
        encode_audio(pcm)
    print(f"codec encode             {100_000 / (time.perf_counter() - t0):>12,.0f} frames/s")


async def one_leg(port: int, call_id: str, seconds: float) -> int:
    """Asterisk side: 20 ms frames in, count frames out, hang up at the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_uuid(call_id))
    parser = FrameParser()
    received = 0

    async def read() -> None:
        nonlocal received
        while data := await reader.read(65536):
            received += len(parser.feed(data))

    reading = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while (due := start + n * 0.02) < start + seconds:
        await asyncio.sleep(max(0.0, due - loop.time()))
        writer.write(encode_audio(bytes(320)))
        n += 1
    writer.write(encode_hangup())
    await reading
    writer.close()
    return received


def legs_process(port: int, ids: list[str], seconds: float) -> None:
    """The Asterisk side runs in its own process so it does not share our event loop."""
    async def all_legs() -> None:
        await asyncio.gather(*(one_leg(port, cid, seconds) for cid in ids))
    asyncio.run(all_legs())


async def bench_calls(calls: int, seconds: float) -> None:
    lateness: list[float] = []
    frames_sent: list[int] = []

    async def echo(call: CallAudio) -> None:
        count = 0

        def on_frame(fs: FrameSent) -> None:
            nonlocal count
            count += 1
            lateness.append(fs.t - fs.scheduled)

        call.output.add_listener(on_frame)
        async for ev in call.incoming():
            if isinstance(ev, AudioIn):
                call.output.enqueue(ev.pcm)
        frames_sent.append(count)

    server = AudioSocketServer(SystemClock())
    await server.start()
    ids = [str(uuid.uuid4()) for _ in range(calls)]
    for cid in ids:
        server.expect(cid, echo)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    proc = multiprocessing.get_context("fork").Process(
        target=legs_process, args=(server.port, ids, seconds))
    proc.start()
    await asyncio.get_running_loop().run_in_executor(None, proc.join)
    await server.wait_idle()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await server.close()
    lat_ms = sorted(x * 1000 for x in lateness)
    p = lambda q: lat_ms[min(len(lat_ms) - 1, int(q * len(lat_ms)))]  # noqa: E731
    print(f"calls={calls:>4} {seconds:.0f}s  frames/call mean={statistics.mean(frames_sent):.1f} "
          f"(ideal {seconds / 0.02:.0f})  pacer late ms p50={p(0.5):.2f} p99={p(0.99):.2f} "
          f"max={lat_ms[-1]:.2f}  server cpu={cpu / wall * 100:.0f}% of one core "
          f"({cpu / (calls * seconds) * 1000:.2f} ms cpu per call-second)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="1,20,100")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    bench_codec()
    for n in (int(x) for x in args.calls.split(",")):
        asyncio.run(bench_calls(n, args.seconds))


if __name__ == "__main__":
    main()
