"""Fuzz the AMI parser: only AmiProtocolError may escape, memory stays capped, no hangs."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from televox_pbx.ami.codec import AmiBanner, AmiMessage, AmiParser, AmiProtocolError, encode
from televox_pbx.ami.fixtures import default_fixture_dir, load_transcript, wire_bytes
from televox_pbx.ami.tracker import CallTracker
from televox_pbx.clock import FakeClock

FIXTURES = default_fixture_dir(Path(__file__).resolve().parents[1])
STREAMS = [wire_bytes(load_transcript(p)) for p in sorted(FIXTURES.glob("*.raw.txt"))]
MAX = 2048  # a small cap so the fuzzer reaches it
# TELEVOX_FUZZ_EXAMPLES=5000 for a long random hunt; the default run is fixed and fast.
_EXAMPLES = int(os.environ.get("TELEVOX_FUZZ_EXAMPLES", "0"))
FAST = settings(max_examples=_EXAMPLES or 150, deadline=2000, derandomize=not _EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Item = AmiBanner | AmiMessage
# Bytes that matter to the framing show up far more often than at random.
framing_bytes = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\n\r\n", b":", b": ",
                                          b" ", b"A", b"Event: X\r\n", b"Key: v\r\n",
                                          b"Response: Follows\r\n", b"follows",
                                          b"--END COMMAND--", b"\xff", b"\x00", b"\t"]),
                         max_size=200).map(b"".join)
noise = st.one_of(st.binary(max_size=3000), framing_bytes)


class LineByLineParser(AmiParser):
    """The reference: the bulk fast path switched off."""

    def _fast(self, out: list[Item], fresh: int) -> int:
        return 0


def run(data: bytes, cuts: list[int], *, banner: bool,
        parser_type: type[AmiParser] = AmiParser) -> tuple[list[Item], bool]:
    """Feed `data` cut at `cuts`; return the items and whether the parser gave up."""
    parser = parser_type(expect_banner=banner, max_message_bytes=MAX)
    out: list[Item] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    try:
        for a, b in itertools.pairwise(bounds):
            out += parser.feed(data[a:b])
            # Memory: never more than one capped message is held.
            assert parser.buffered <= MAX
    except AmiProtocolError:
        return out, True
    return out, False


def check(data: bytes, cuts: list[int], banner: bool) -> None:
    split, split_failed = run(data, cuts, banner=banner)
    whole, whole_failed = run(data, [], banner=banner)
    if not split_failed and not whole_failed:
        assert split == whole  # framing does not depend on how the bytes arrive
    # The bulk fast path gives exactly what the line-by-line path gives.
    assert run(data, cuts, banner=banner, parser_type=LineByLineParser) == (split, split_failed)
    assert run(data, [], banner=banner, parser_type=LineByLineParser) == (whole, whole_failed)
    tracker = CallTracker(FakeClock())
    tracker.register("1795352529.0", action_id="x")
    for item in split:
        if isinstance(item, AmiMessage):
            tracker.feed(item)  # garbage fields never crash the tracker
            assert_round_trip(item)


def assert_round_trip(msg: AmiMessage) -> None:
    """Whatever was parsed re-encodes to something that parses back the same (or is refused)."""
    try:
        data = encode(msg.fields)
    except ValueError:
        return  # e.g. a bare CR inside a value: refusing is the contract
    assert AmiParser(expect_banner=False).feed(data) == [msg]


cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40)


@FAST
@given(data=noise, cuts=cuts, banner=st.booleans())
def test_random_bytes(data: bytes, cuts: list[int], banner: bool) -> None:
    check(data, cuts, banner)


@FAST
@given(stream=st.sampled_from(STREAMS), end=st.integers(min_value=0), cuts=cuts)
def test_truncated_real_streams(stream: bytes, end: int, cuts: list[int]) -> None:
    data = stream[:end % (len(stream) + 1)]
    _, failed = run(data, cuts, banner=True)
    assert not failed  # a real stream cut short is just incomplete, never an error
    check(data, cuts, True)


@FAST
@given(stream=st.sampled_from(STREAMS),
       edits=st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=8),
                                st.integers(min_value=0, max_value=8)), max_size=12),
       cuts=cuts)
def test_mutated_real_streams(stream: bytes, edits: list[tuple[int, bytes, int]],
                              cuts: list[int]) -> None:
    data = bytearray(stream)
    for pos, insert, delete in edits:
        at = pos % (len(data) + 1)
        data[at:at + delete] = insert
    check(bytes(data), cuts, True)


@FAST
@given(stream=st.sampled_from(STREAMS), cuts=cuts)
def test_real_streams_any_split_same_messages(stream: bytes, cuts: list[int]) -> None:
    whole, failed = run(stream, [], banner=True)
    assert not failed
    split, failed = run(stream, cuts, banner=True)
    assert not failed and split == whole


@settings(max_examples=30, deadline=2000, derandomize=True)
@given(st.binary(min_size=1, max_size=64).filter(lambda b: b"\n" not in b))
def test_endless_line_is_capped(chunk: bytes) -> None:
    parser = AmiParser(expect_banner=False, max_message_bytes=MAX)
    try:
        for _ in range(MAX // len(chunk) + 2):
            parser.feed(chunk)
    except AmiProtocolError:
        return
    raise AssertionError("an endless line was never capped")
