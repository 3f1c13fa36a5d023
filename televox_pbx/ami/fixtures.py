"""Loader for recorded AMI conversations (`*.raw.txt`), for replay tests and benchmarks.

Format: blocks start with `### >> +S.SSSs` (sent by the client) or `### << +S.SSSs`
(received), followed by the message text as on the wire but with LF line ends; each
message ends with a blank line, the banner block is one line. `wire` gives the block
back as the bytes that crossed the socket (CRLF).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from televox_pbx.ami.codec import AmiBanner, AmiMessage, AmiParser

_HEADER = re.compile(r"^### (<<|>>) \+\s*(\d+(?:\.\d+)?)s\s*$")


class Direction(StrEnum):
    SENT = ">>"  # client -> Asterisk
    RECEIVED = "<<"  # Asterisk -> client


@dataclass(frozen=True, slots=True)
class Block:
    direction: Direction
    at_s: float  # seconds since connect
    wire: bytes  # exactly as on the wire (CRLF line ends)


class FixtureFormatError(ValueError):
    """The transcript file does not follow the `### >> +S.SSSs` block format."""


def parse_transcript(text: str, *, name: str = "<transcript>") -> list[Block]:
    blocks: list[Block] = []
    head: tuple[Direction, float] | None = None
    body: list[str] = []

    def flush() -> None:
        if head is not None:
            # The blank line that ends a message is part of the block already.
            wire = "".join(f"{line}\r\n" for line in body)
            blocks.append(Block(head[0], head[1], wire.encode("utf-8", "surrogateescape")))

    # Drop the file's final newline so the last block does not gain an extra empty line.
    lines = (text[:-1] if text.endswith("\n") else text).split("\n")
    for lineno, line in enumerate(lines, start=1):
        m = _HEADER.match(line)
        if m:
            flush()
            head, body = (Direction(m.group(1)), float(m.group(2))), []
        elif head is None:
            if line.strip():
                raise FixtureFormatError(f"{name}:{lineno}: text before the first ### header")
        else:
            body.append(line)
    flush()
    return blocks


def load_transcript(path: Path) -> list[Block]:
    raw = path.read_bytes().decode("utf-8", "surrogateescape")
    return parse_transcript(raw, name=str(path))


def wire_bytes(blocks: Iterable[Block], direction: Direction = Direction.RECEIVED) -> bytes:
    """The whole byte stream of one side, banner first for the received side."""
    return b"".join(b.wire for b in blocks if b.direction == direction)


def parse_side(blocks: Iterable[Block], direction: Direction) -> list[AmiMessage]:
    """Messages of one side, parsed with AmiParser (banner dropped)."""
    parser = AmiParser(expect_banner=direction == Direction.RECEIVED)
    return [item for item in parser.feed(wire_bytes(blocks, direction))
            if isinstance(item, AmiMessage)]


def timed_messages(blocks: Iterable[Block]) -> list[tuple[Block, AmiBanner | AmiMessage]]:
    """Every message with its block, in transcript order, each side through its own parser."""
    parsers = {Direction.RECEIVED: AmiParser(expect_banner=True),
               Direction.SENT: AmiParser(expect_banner=False)}
    out: list[tuple[Block, AmiBanner | AmiMessage]] = []
    for block in blocks:
        out.extend((block, item) for item in parsers[block.direction].feed(block.wire))
    return out


def sent_originates(blocks: Iterable[Block]) -> list[AmiMessage]:
    sent = parse_side(blocks, Direction.SENT)
    return [m for m in sent if (m.action or "").lower() == "originate"]


def default_fixture_dir(repo_root: Path) -> Path:
    """Where the shared Asterisk 22 captures live, relative to a checkout's root."""
    return repo_root.parent / "shared" / "fixtures" / "asterisk-22"
