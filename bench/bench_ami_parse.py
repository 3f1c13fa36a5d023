"""AMI parse throughput on the real Asterisk 22 captures, one core.

Builds one long stream from the received side of every capture (banner once), feeds it
in socket-sized chunks, and prints events/s and MB/s (target: >= 100,000 events/s).
Also times codec + CallTracker together, as the daemon runs them. Rates use process CPU
time (one core, robust to a busy machine); wall-clock seconds are printed alongside.

    .venv/bin/python bench/bench_ami_parse.py [--events 200000] [--chunk 65536]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from televox_pbx.ami.codec import AmiMessage, AmiParser
from televox_pbx.ami.fixtures import default_fixture_dir, load_transcript, wire_bytes
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.clock import FakeClock

BANNER_END = b"\r\n"


def build_stream(fixtures: Path, events: int) -> tuple[bytes, int]:
    bodies = []
    for path in sorted(fixtures.glob("*.raw.txt")):
        data = wire_bytes(load_transcript(path))
        bodies.append(data[data.index(BANNER_END) + 2:])  # drop each banner
    one = b"".join(bodies)
    per = len(AmiParser(expect_banner=False).feed(one))
    reps = max(1, -(-events // per))
    return b"Asterisk Call Manager/11.0.0\r\n" + one * reps, per * reps


def parse(stream: bytes, chunk: int) -> tuple[int, float, float]:
    parser = AmiParser()
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(stream), chunk):
        n += len(parser.feed(stream[i:i + chunk]))
    return n - 1, time.process_time() - c0, time.perf_counter() - t0  # minus the banner


def parse_and_track(stream: bytes, chunk: int) -> tuple[int, float, float]:
    parser = AmiParser()
    tracker = CallTracker(FakeClock())
    for i in range(1000):  # calls in flight that the events do not match
        tracker.register(f"call-{i}")
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(stream), chunk):
        for item in parser.feed(stream[i:i + chunk]):
            if isinstance(item, AmiMessage):
                tracker.feed(item)
                n += 1
    return n, time.process_time() - c0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fixtures = default_fixture_dir(Path(__file__).resolve().parents[1])
    stream, expected = build_stream(fixtures, args.events)
    mb = len(stream) / 1e6
    print(f"stream: {expected} messages, {mb:.1f} MB, chunk {args.chunk} B")
    for name, fn in (("parse", parse), ("parse+track", parse_and_track)):
        best = min((fn(stream, args.chunk) for _ in range(args.rounds)), key=lambda r: r[1])
        n, cpu, wall = best
        assert n == expected, (n, expected)
        print(f"{name:12s} {n / cpu:10,.0f} events/s {mb / cpu:7.1f} MB/s "
              f"(cpu {cpu:.3f} s, wall {wall:.3f} s; best of {args.rounds})")


if __name__ == "__main__":
    main()
