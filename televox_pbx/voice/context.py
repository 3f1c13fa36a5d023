"""The conversation as the LLM sees it and as the transcript records it: one log, in order.

Agent replies take their place when they go to the line, callee turns when their end is
confirmed, so what the callee said over the agent (a backchannel, or words over the
opening) sits after the agent utterance it interrupted, in the order it was said. An
answer queued behind the opening keeps its place before what the callee said while it
waited, so the reply owed to those words follows a callee turn (tried the other way, the
owed reply continued the agent's own answer, and once confirmed an appointment nobody had
confirmed). A reply's text is what the callee heard of it: it is rewritten when a
barge-in cuts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from televox_pbx.knowledge.grounding import Grounding, with_note
from televox_pbx.store.transcripts import TurnRow
from televox_pbx.voice.interfaces import ChatMessage
from televox_pbx.voice.playback import RATE, Reply
from televox_pbx.voice.turns import heard_prefix

# Ends a reply the callee cut off, as the LLM sees it: a dash, as writing marks speech
# broken off. A bracketed " [interrupted]" was copied: the model answered the next turn
# with "Yes, [interrupted]", which the guard rejects as a note, three times over, so the
# callee heard the fallback line (bench/capacity.py, 2 calls).
INTERRUPTED_MARK = "—"



@dataclass(frozen=True, slots=True)
class CalleeSaid:
    text: str
    started: float
    ended: float
    backchannel: bool = False  # said over the agent, who went on
    # Transcript only, not the model's context: a greeting over the opening, which the
    # opening answered (for the model it broke the cached prompt before the opening, or,
    # run into the callee's next words, made it greet back).
    answered_by_opening: bool = False


@dataclass(frozen=True, slots=True)
class Note:
    """Context only (not the transcript): a tool result, a key the callee pressed."""

    message: ChatMessage


Entry = Reply | CalleeSaid | Note


class Conversation:
    def __init__(self, system: ChatMessage, ground: Grounding | None = None) -> None:
        self.system = system
        self.entries: list[Entry] = []
        self.ground = ground  # the agent's knowledge, looked up on each callee turn

    def user_message(self, text: str) -> ChatMessage:
        """A callee's turn as the LLM sees it: with the knowledge note appended (after
        the turn, so everything before it in the prompt stays as cached)."""
        note = self.ground.note(text) if self.ground is not None else None
        return ChatMessage("user", with_note(text, note))

    # --- writing ---------------------------------------------------------------------

    def add_reply(self, reply: Reply) -> None:
        """`reply` goes to the line now; its text counts once committed."""
        self.entries.append(reply)

    def add_callee(self, said: CalleeSaid, *, greeting: bool = False) -> None:
        """`greeting`: said before the agent spoke (heard while machine detection
        listened), so it goes before the agent's first reply, though confirmed after."""
        at = len(self.entries)
        if greeting:
            at = next((i for i, e in enumerate(self.entries) if isinstance(e, Reply)), at)
        self.entries.insert(at, said)

    def add_note(self, message: ChatMessage) -> None:
        self.entries.append(Note(message))

    def commit(self, reply: Reply, text: str) -> None:
        """Record what the agent said (or, after a barge-in, what was heard of it)."""
        reply.final_text = text

    def commit_cut(self, played: int, current: Reply | None) -> None:
        """Record, of every reply whose audio went past `played`, only what was heard: a
        reply queued behind another (an answer behind the opening) takes the earlier
        one's tail with it, though that one was recorded whole when it was queued."""
        for item in self.entries:
            if isinstance(item, Reply) and (
                    (item is current and item.final_text is None)
                    or (item.pieces and played < item.pieces[-1].end)):
                heard, cut = heard_prefix(item.pieces, played)
                item.interrupted = cut or len(heard) < len(item.text)
                item.heard_end = played if item.interrupted else None
                self.commit(item, heard)

    # --- reading ---------------------------------------------------------------------

    def messages(self, then: str | None = None) -> list[ChatMessage]:
        """The LLM's view, plus `then` (a provisional turn's words, not yet in the log).
        Callee turns with no agent words heard between them are one message: on the real
        PBX, "Yes." then "I have a minute. What is it about?" as two user messages in a
        row were answered with an echo of the second, or a decline."""
        out = [self.system]
        run: list[str] = []  # the callee's turns since the last message of another kind

        def flush() -> None:
            if run:
                out.append(self.user_message(" ".join(run)))
                run.clear()
        for item in self.entries:
            if isinstance(item, CalleeSaid):
                if not item.answered_by_opening:
                    run.append(item.text)
            elif isinstance(item, Note):
                flush()
                out.append(item.message)
            elif item.final_text:  # a reply the callee heard nothing of is not there
                flush()
                text = item.final_text
                out.append(ChatMessage("assistant",
                                       text + INTERRUPTED_MARK if item.interrupted else text))
        if then is not None:
            run.append(then)
        flush()
        return out

    def recent_agent_text(self, replies: int = 2) -> str:
        """The words of the agent's last replies (what may be echoing back now)."""
        recent = [e for e in self.entries if isinstance(e, Reply)][-replies:]
        return " ".join(r.text for r in recent)

    @property
    def callee_texts(self) -> list[str]:
        return [e.text for e in self.entries if isinstance(e, CalleeSaid)]

    def rows(self, wall: Callable[[float], datetime]) -> list[TurnRow]:
        """The transcript: each turn with its text and times (`wall` maps call time), in
        the log's order but for an answer queued behind another: it keeps its log place
        before the words said while it waited (see above), but a reader sees it where
        the callee heard it, before the first callee turn begun after it began to play.
        Other agent lines keep their place (the opening, though a slow render let the
        callee speak before its first audio)."""
        rows: list[TurnRow] = []
        waiting: list[tuple[float, TurnRow]] = []  # answers not yet heard at this point
        for item in self.entries:
            if isinstance(item, Note):
                continue
            if isinstance(item, CalleeSaid):
                while waiting and waiting[0][0] <= item.started:
                    rows.append(waiting.pop(0)[1])
                rows.append(TurnRow(0, "callee", item.text, wall(item.started),
                                    wall(item.ended)))
                continue
            row = self._agent_row(item, wall)
            if row is None:
                continue  # nothing of it was heard
            if item.speech_end is not None and item.first_frame is not None:
                waiting.append((item.first_frame, row))
            else:
                rows += [r for _, r in waiting] + [row]
                waiting.clear()
        rows += [r for _, r in waiting]
        return [replace(row, turn=i) for i, row in enumerate(rows, 1)]

    @staticmethod
    def _agent_row(item: Reply, wall: Callable[[float], datetime]) -> TurnRow | None:
        text = item.final_text if item.final_text is not None else item.text
        if not text:
            return None
        ended = item.pieces[-1].end if item.pieces else 0
        if item.heard_end is not None:  # cut: it ended where the callee stopped hearing
            ended = min(ended, item.heard_end)
        seconds = max(0, ended - item.pieces[0].start) / (RATE * 2) if item.pieces else 0.0
        start_t = item.first_frame if item.first_frame is not None else item.started
        return TurnRow(0, "agent", text, wall(start_t), wall(start_t + seconds),
                       item.interrupted, item.latency or None)
