"""The agent's audio on its way to the line: what each reply queued, where it lies in the
output stream, and barge-in as pause, resume or stop.

A callee who starts talking over the agent pauses it at once (the output is cleared, the
unplayed audio kept). If what they said was only a backchannel ("uh-huh") or noise, the
agent resumes from the start of the clause it was in; otherwise the pause becomes a stop,
and the context keeps only what was heard before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from televox_pbx.audiosocket.session import AudioOutput, FrameSent
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.turns import SpokenPiece

RATE = 8000


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


@dataclass(slots=True, eq=False)
class Reply:
    """One agent utterance: what was queued, and where in the output stream it lies."""

    text_parts: list[str] = field(default_factory=list)
    pieces: list[SpokenPiece] = field(default_factory=list)
    started: float = 0.0
    interruptible: bool = True
    final_text: str | None = None  # what the context and transcript say it said
    interrupted: bool = False
    speech_end: float | None = None  # callee speech end this replies to (for latency)
    latency: dict[str, float] = field(default_factory=dict)
    first_frame: float | None = None
    live: bool = True  # False while its turn is provisional: audio is held, not queued
    held: list[tuple[str, bytes, bool]] = field(default_factory=list)  # clause, pcm, first
    discloses: bool = False  # the AI disclosure is rendered whole in it
    heard_end: int | None = None  # output position where it was cut (its last heard byte)

    @property
    def text(self) -> str:
        return "".join(self.text_parts).strip()


@dataclass(slots=True)
class _Chunk:
    reply: Reply
    clause: str
    pcm: bytes
    first: bool  # starts a piece (clause) of the reply
    end: int  # output stream position after it


class Playback:
    """Everything the agent has queued, per reply; the one place that writes the output."""

    def __init__(self, output: AudioOutput, disclosure: Disclosure) -> None:
        self.output = output
        self.disclosure = disclosure
        self.current: Reply | None = None  # the reply being said (the last one opened)
        self.last_audio_t = -1e9  # when the last frame with agent audio was sent
        self._chunks: list[_Chunk] = []  # queued and perhaps not yet played
        self._stash: list[_Chunk] | None = None  # unplayed audio while paused
        self._paused_at = 0  # played position when paused

    @property
    def paused(self) -> bool:
        return self._stash is not None

    @property
    def queued_seconds(self) -> float:
        return self.output.queued_seconds

    def open(self, reply: Reply) -> None:
        """The reply becomes the one being said: its held audio is queued."""
        self.current = reply
        reply.live = True
        held, reply.held = reply.held, []
        for clause, pcm, first in held:
            self.enqueue(reply, clause, pcm, first)
        if reply.discloses:
            self.disclosure.queued(reply, reply.pieces, self.output.played_position)

    def enqueue(self, reply: Reply, clause: str, pcm: bytes, first: bool) -> None:
        """Queue audio; `first` starts a new piece, else extends the reply's last one."""
        if self._stash is not None:
            self._stash.append(_Chunk(reply, clause, pcm, first, 0))
            return
        end = self.output.enqueue(pcm)
        self._chunks.append(_Chunk(reply, clause, pcm, first, end))
        if first or not reply.pieces:
            reply.pieces.append(SpokenPiece(clause, end - len(pcm), end))
        else:
            last = reply.pieces[-1]
            reply.pieces[-1] = SpokenPiece(clause, last.start, end)

    def on_frame(self, frame: FrameSent) -> None:
        self.disclosure.played(frame.position)
        self._prune(frame.position)
        if frame.silent:
            return
        self.last_audio_t = frame.t
        # Any reply whose audio is now playing, not only the last opened: an answer queued
        # behind the opening plays while the next one is being prepared.
        for chunk in self._chunks:
            if chunk.end - len(chunk.pcm) >= frame.position:
                break
            reply = chunk.reply
            if reply.first_frame is None:
                reply.first_frame = frame.t
                if reply.speech_end is not None:
                    reply.latency["first_frame_ms"] = ms(frame.t - reply.speech_end)

    def _prune(self, played: int) -> None:
        """Forget the audio played, except the clause in progress (a pause replays it)."""
        chunks = self._chunks
        i = 0
        while i < len(chunks) and chunks[i].end <= played:
            i += 1
        while 0 < i < len(chunks) and not chunks[i].first \
                and chunks[i - 1].reply is chunks[i].reply:
            i -= 1
        del chunks[:i]

    # --- barge-in --------------------------------------------------------------------

    def pause(self) -> None:
        """Stop sound now, keeping what was not heard (from the start of the clause it was
        in) to resume."""
        if self._stash is not None:
            return
        played = self.output.played_position
        if self.output.queued_seconds > 0:
            self.output.clear()
        self._paused_at = played
        self._prune(played)
        stash = self._chunks
        self._chunks = []
        self._stash = stash

    def resume(self) -> None:
        """Play on what a pause kept, from the start of the clause it cut."""
        stash, self._stash = self._stash, None
        if stash is None:
            return
        played = self._paused_at
        for reply in {id(c.reply): c.reply for c in stash}.values():
            reply.pieces = [p for p in reply.pieces if p.end <= played]
        for chunk in stash:
            self.enqueue(chunk.reply, chunk.clause, chunk.pcm,
                         chunk.first or not chunk.reply.pieces
                         or chunk.reply.pieces[-1].text != chunk.clause)

    def stop(self) -> int:
        """Barge-in for good: drop what is queued (or kept by a pause). Returns the stream
        position the callee stopped hearing at."""
        if self._stash is not None:
            played, self._stash = self._paused_at, None
        else:
            played = self.output.played_position  # before clear(), which counts dropped audio
            if self.output.queued_seconds > 0:
                self.output.clear()
        self._chunks = []
        self.disclosure.cut(played)
        self.current = None
        return played
