"""Turn-taking, sans-IO: who speaks when, decided from events, answered with actions.

Events come in (the call started, the callee's speech started, paused, resumed or
stopped, a transcript, a key, a clock tick, an agent task done) and actions go out
(transcribe, reply, say a line, pause / resume / stop the agent's audio, record a turn,
opt out, transfer, hang up). Nothing here awaits, sleeps or touches audio: the session
(session.py) carries the actions out and reports back. Time is the events' own.

A turn starts *provisionally* at the callee's first short pause: the utterance so far is
transcribed and a reply prepared, held back, while the endpoint makes sure they have
finished. If they speak on, it is dropped; if the endpoint confirms it, the held reply
plays at once. Speech over the agent pauses it; what that speech turns out to be decides
the rest: noise or a backchannel ("uh-huh") and the agent goes on, anything else stops it
and is answered. Everything the callee says is transcribed and recorded in its order,
during the opening too; what they say over a line that must be heard whole (the opening
with its AI disclosure, a goodbye) is answered once that line has been said, but for a
greeting over the opening (agent/greetings.py): the opening is its answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.greetings import is_greeting
from televox_pbx.agent.optout import is_opt_out
from televox_pbx.agent.tools import EndCall, OptOut, Transfer
from televox_pbx.config.campaign import Campaign
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.backchannel import is_backchannel
from televox_pbx.voice.call_flow import CallFlow, ms
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.context import CalleeSaid
from televox_pbx.voice.disclosure import Disclosure

__all__ = ["TurnTaking"]

log = logging.getLogger(__name__)

# The modes in which what the callee says is transcribed and kept (in voicemail mode the
# machine's greeting is not the callee).
_LISTENING = ("screening", "conversation", "ending", "ended")


@dataclass(slots=True)
class _Turn:
    """A stretch of callee speech being transcribed (provisional until `confirmed`)."""

    seq: int
    audio: bytes
    started: float
    ended: float  # last speech heard
    over_agent: bool  # began while the agent had more to say
    text: str | None = None
    transcribed_at: float = 0.0
    confirmed: float | None = None  # when the endpoint decided



class TurnTaking(CallFlow):
    def __init__(self, campaign: Campaign, config: SessionConfig, disclosure: Disclosure,
                 disposition: DispositionState, queued: Callable[[], float], *,
                 can_transfer: bool, voicemail_text: str, call_id: str = "") -> None:
        super().__init__(campaign, config, disclosure, disposition, queued,
                         can_transfer=can_transfer, voicemail_text=voicemail_text,
                         call_id=call_id)
        self._turns: dict[int, _Turn] = {}
        self._carry: _Turn | None = None  # confirmed, cut off before transcribed
        self._utt_over_agent = False  # the callee's speech began over the agent
        self._opening_end = float("inf")  # when the opening's last audio plays out

    def handle(self, ev: te.Event) -> list[te.Action]:
        match ev:
            case te.Tick():
                return self._tick(ev)
            case te.SpeechStarted(at=at):
                return self._speech_started(at)
            case te.SpeechPaused():
                return self._speech_paused(ev)
            case te.SpeechResumed(seq=seq):
                return self._speech_resumed(seq)
            case te.SpeechStopped():
                return self._speech_stopped(ev)
            case te.Transcribed(seq=seq, text=text, at=at, own_words=own_words):
                turn = self._turns.get(seq)
                if turn is None:
                    return []  # dropped meanwhile
                # Our own words heard back over our voice: echo that got past the gate.
                turn.text = "" if own_words and turn.over_agent else text.strip()
                turn.transcribed_at = at
                return self._progress(turn)
            case te.AgentDone():
                return self._agent_done(ev)
            case te.DtmfPressed(digit=digit, at=at):
                return self._dtmf(digit, at)
            case te.CallStarted(at=at, amd=amd, screen=screen, answered=answered):
                return self._start(at, amd, screen, answered)
            case te.Screened():
                return self._screened(ev) + self._greeting_heard()
            case te.Beep(at=at):
                return self._leave_voicemail(at) if self.mode == "voicemail" else []
            case te.Transferred(at=at):
                self.transferred_at, self.ended_by = at, "transfer"
                return []
            case te.HungUp(local=local):
                if not local and self.mode != "ending" and self.transferred_at is None:
                    self.ended_by = "callee"
                return self._finish()
        return []

    # --- the callee's speech -----------------------------------------------------------

    def _speech_started(self, at: float) -> list[te.Action]:
        if self.mode not in _LISTENING:
            return []
        acts: list[te.Action] = []
        # A turn cut off before it was transcribed is heard again with what follows.
        for seq, turn in list(self._turns.items()):
            if turn.confirmed is not None and turn.text is None:
                del self._turns[seq]
                acts.append(te.CancelTranscribe(seq))
                carry = self._carry
                if carry is not None:
                    turn.audio, turn.started = carry.audio + turn.audio, carry.started
                self._carry = turn
        slot = self._slot
        self._utt_started = at
        self._utt_over_agent = (self._queued() >= self.config.backchannel_min_left_s
                                or (slot is not None and not slot.held))
        if self.mode != "conversation":
            return acts  # over the goodbye: heard and kept, but it does not stop it
        self._reprompted = False
        if self._agent_active():
            log.info("barge-in", extra={"call_id": self._call_id,
                                        "onset_s": round(at - self._t0, 3)})
            self._paused_by = at
            acts.append(te.Pause())
        return acts

    def _new_turn(self, seq: int, audio: bytes, started: float, ended: float) -> _Turn:
        carry = self._carry
        if carry is not None:
            audio, started = carry.audio + audio, carry.started
        turn = _Turn(seq, audio, started, ended, self._utt_over_agent)
        self._turns[seq] = turn
        return turn

    def _speech_paused(self, ev: te.SpeechPaused) -> list[te.Action]:
        if self.mode not in ("conversation", "screening"):
            return []
        turn = self._new_turn(ev.seq, ev.audio, ev.started, ev.last_speech)
        return [te.Transcribe(ev.seq, turn.audio)]

    def _speech_resumed(self, seq: int) -> list[te.Action]:
        acts: list[te.Action] = []
        turn = self._turns.pop(seq, None)
        if turn is not None and turn.text is None:
            acts.append(te.CancelTranscribe(seq))
        slot = self._slot
        if slot is not None and slot.seq == seq and slot.held:
            self._slot = None  # the provisional reply: the callee went on talking
            acts.append(te.Cancel())
        if self._resumed_on == seq and self._agent_active():
            self._resumed_on, self._paused_by = None, self._utt_started
            acts.append(te.Pause())  # it was not a backchannel after all
        return acts

    def _speech_stopped(self, ev: te.SpeechStopped) -> list[te.Action]:
        self._anchor = ev.last_speech
        if self.mode not in _LISTENING:
            self._carry = None
            return []
        turn = self._turns.get(ev.seq) if ev.provisional else None
        acts: list[te.Action] = []
        if turn is None:
            turn = self._new_turn(ev.seq, ev.audio, ev.started, ev.last_speech)
            acts.append(te.Transcribe(ev.seq, turn.audio))
        self._carry = None
        turn.confirmed = ev.at
        return acts + self._progress(turn)

    def _progress(self, turn: _Turn) -> list[te.Action]:
        """A turn got its transcript or its endpoint: act when it has what it needs."""
        text, confirmed = turn.text, turn.confirmed
        if text is None:
            return []
        said = CalleeSaid(text, turn.started, turn.ended)
        if self.mode == "screening":
            return []  # kept until the verdict: a person's, or a machine's greeting
        if self.mode != "conversation" or turn.started < self._heard_from:
            if confirmed is not None and text:
                del self._turns[turn.seq]
                # Nothing said is dropped, even at the end.
                return [te.Record(said, greeting=turn.started < self._heard_from)]
            return []
        if not text:  # noise: the agent, if it paused, goes on
            if confirmed is not None:
                del self._turns[turn.seq]
                self._anchor_pending = True
            return self._resume(None) if self._paused_by is not None else []
        if is_opt_out(text):
            # The law, not the model, decides this one, on the confirmed turn.
            if confirmed is None:
                return []
            del self._turns[turn.seq]
            return [te.Record(said), *self._opt_out("optout", confirmed)]
        if turn.started < self._opening_end \
                and is_greeting(text, self.campaign.agent.opening_line):
            # "Hello, this is Sam speaking." as they picked up, over the opening: the
            # opening is its answer (answered after it, the model said it all again).
            # Kept for the transcript only (voice/context.py, CalleeSaid.answered_by_opening).
            acts = self._resume(None) if self._paused_by is not None else []
            if confirmed is not None:
                del self._turns[turn.seq]
                acts.append(te.Record(replace(said, answered_by_opening=True)))
            return acts
        if (turn.over_agent and turn.ended - turn.started <= self.config.backchannel_max_s
                and is_backchannel(text)):
            acts = self._resume(turn.seq) if self._paused_by is not None else []
            if confirmed is not None:
                del self._turns[turn.seq]
                acts.append(te.Record(CalleeSaid(text, turn.started, turn.ended, True)))
            return acts
        acts = self._stop() if self._paused_by is not None else []
        slot = self._slot
        if slot is not None and slot.seq == turn.seq:  # its reply is being prepared
            if confirmed is not None and slot.held:
                del self._turns[turn.seq]
                slot.held = False
                self._live_interruptible = True
                acts += [te.Record(said), te.Release(slot.id, ms(confirmed - turn.ended))]
            return acts
        if confirmed is None:
            if slot is None:
                acts += self._reply(turn.ended, seq=turn.seq, user=text, held=True,
                                    transcript_ms=ms(turn.transcribed_at - turn.ended))
            return acts
        del self._turns[turn.seq]
        acts.append(te.Record(said))
        if slot is None:
            acts += self._reply(turn.ended, seq=turn.seq, endpoint_ms=ms(confirmed - turn.ended),
                                transcript_ms=ms(turn.transcribed_at - turn.ended))
        else:
            self._owed = turn.ended  # over a line that must be heard: answered after it
        return acts

    def _greeting_heard(self) -> list[te.Action]:
        """After the stream verdict: a person's greeting goes into the transcript (it is
        not answered: the opening is the answer); a machine's is dropped."""
        acts: list[te.Action] = []
        if self.mode == "conversation":
            for seq, turn in sorted(self._turns.items()):
                if turn.text is not None and turn.confirmed is not None:
                    del self._turns[seq]
                    if turn.text:
                        acts.append(te.Record(CalleeSaid(turn.text, turn.started,
                                                         turn.ended), greeting=True))
            return acts
        if self.mode == "screening":
            return acts
        for seq, turn in self._turns.items():
            if turn.text is None:
                acts.append(te.CancelTranscribe(seq))
        self._turns.clear()
        self._carry = None
        return acts

    # --- the agent's tasks, keys, time --------------------------------------------------

    def _agent_done(self, ev: te.AgentDone) -> list[te.Action]:
        slot = self._slot
        if slot is None or ev.task != slot.id:
            return []  # cancelled; already handled
        self._slot = None
        if slot.kind == "opening":
            self._opening_end = ev.at + self._queued()
        if ev.outcome is None and self.mode == "ending":  # the goodbye failed
            return self._finish()
        if self.mode == "ending":
            return []
        outcome = ev.outcome or te.Outcome()
        acts: list[te.Action] = []
        if outcome.action is not None and self._paused_by is not None:
            acts = self._resume(None)  # let it finish what it says before it goes
        match outcome.action:
            case OptOut():
                return acts + self._opt_out(outcome.source, ev.at)
            case EndCall():
                self.ended_by = "agent"
                return acts + self._end(None if outcome.spoke else self.lines.goodbye, ev.at)
            case Transfer():
                return acts + self._transfer(not outcome.spoke, ev.at)
        self._anchor_pending = outcome.restart_silence or self._anchor_pending
        if self._owed is not None:
            speech_end, self._owed = self._owed, None
            return self._reply(speech_end)
        waiting = [t for t in self._turns.values() if t.text and t.confirmed is None]
        if waiting:  # transcribed while the agent was busy: prepare its reply now
            return self._progress(waiting[-1])
        return []

