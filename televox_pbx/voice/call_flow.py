"""The agent's side of turn-taking (sans-IO, like voice/turntaking.py, which builds on
it): the one task the agent runs at a time, the start and end of the call, keys, and
what the clock decides (silence, re-prompt, the call's length, the goodbye's grace).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.interfaces import ChatMessage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Slot:
    """What the agent is busy with: one task at a time."""

    id: int
    kind: str  # opening, line, reply, ending, transfer
    interruptible: bool
    seq: int | None = None  # the callee turn a reply answers
    held: bool = False  # a provisional turn's reply, not released yet



class CallFlow:
    def __init__(self, campaign: Campaign, config: SessionConfig, disclosure: Disclosure,
                 disposition: DispositionState, queued: Callable[[], float], *,
                 can_transfer: bool, voicemail_text: str, call_id: str = "") -> None:
        self.campaign = campaign
        self.config = config
        self.lines = config.lines
        self.disclosure = disclosure
        self.disposition = disposition
        self._queued = queued  # seconds of agent audio waiting to be sent
        self._can_transfer = can_transfer
        self._voicemail_text = voicemail_text
        self._call_id = call_id
        self.mode = "starting"  # screening, conversation, voicemail, ending, ended
        self.ended_by = "callee"
        self.done = False
        self.transferred_at: float | None = None
        self._slot: _Slot | None = None
        self._task_ids = 0
        self._live_interruptible = True  # the reply on the line may be cut by voice
        self._utt_started: float | None = None
        self._paused_by: float | None = None  # onset of the speech that paused the agent
        self._resumed_on: int | None = None  # seq whose backchannel resumed the agent
        self._owed: float | None = None  # speech end of turns to answer once free
        self._t0 = self._anchor = self._ending_since = 0.0
        self._answered = 0.0  # the call's length (max_call_duration_s) counts from here
        # Turns that began before this (the greeting heard while screening) are kept in
        # the transcript but not answered: the opening answers them.
        self._heard_from = float("-inf")
        self._anchor_pending = self._reprompted = False

    @property
    def busy(self) -> bool:
        return self._slot is not None

    def _slot_for(self, kind: str, interruptible: bool, *, seq: int | None = None,
                  held: bool = False) -> int:
        self._task_ids += 1
        self._slot = _Slot(self._task_ids, kind, interruptible, seq, held)
        if not held:
            self._live_interruptible = interruptible
        return self._task_ids

    def _say(self, line: str | None, *, interruptible: bool, hangup: bool = False,
             restart_silence: bool = True) -> list[te.Action]:
        task = self._slot_for("ending" if hangup else "line", interruptible)
        return [te.Say(task, line, interruptible, hangup, restart_silence)]

    def _reply(self, speech_end: float | None, *, seq: int | None = None,
               user: str | None = None, held: bool = False, endpoint_ms: float | None = None,
               transcript_ms: float | None = None) -> list[te.Action]:
        """An LLM reply (to `user`, a provisional turn's words, when held)."""
        task = self._slot_for("reply", True, seq=seq, held=held)
        return [te.OpenTurn(task, speech_end, held, user, endpoint_ms, transcript_ms)]

    def _agent_active(self) -> bool:
        """Speaking (or about to), and a callee's voice may cut it (the AI disclosure and
        lines that must be heard whole it may not)."""
        if self.disclosure.playing or not self._live_interruptible:
            return False
        slot = self._slot
        return (slot is not None and not slot.held) or self._queued() > 0

    def _stop(self) -> list[te.Action]:
        """The agent stops for good (barge-in, a key, the end): its task is cancelled and
        the context keeps what was heard."""
        self._slot = None
        self._paused_by = self._resumed_on = None
        return [te.Stop()]

    def _finish(self) -> list[te.Action]:
        """The call is over: from now on what the callee said is only recorded."""
        self.mode, self.done = "ended", True
        return [te.Finish()]

    def _resume(self, seq: int | None) -> list[te.Action]:
        self._paused_by, self._resumed_on = None, seq
        return [te.Resume()]

    # --- start and end ----------------------------------------------------------------

    def _start(self, at: float, amd: AmdStatus | None, screen: bool = False,
               answered: float | None = None) -> list[te.Action]:
        self._t0 = self._anchor = at
        self._answered = min(at, answered) if answered is not None else at
        if screen and amd is None:
            # Machine detection listens to the greeting first; the opening is rendered
            # meanwhile and held, so a person's "Hello?" is answered at once. The LLM's
            # prefill waits for the verdict: on 2 cores it slowed that render by seconds.
            self.mode = "screening"
            task = self._slot_for("opening", False, held=True)
            return [te.Say(task, None, False, False, True, opening=True, held=True)]
        # NOTSURE, HANGUP and no verdict at all are answered as a person: the opening,
        # with its AI disclosure, is spoken. Only a MACHINE verdict skips it.
        if amd is AmdStatus.MACHINE:
            return self._machine(at)
        self.mode = "conversation"
        # Not interruptible by voice: the AI disclosure in it must be heard. DTMF still
        # cuts it short; then the disclosure is owed (voice/disclosure.py).
        return [*self._say_opening(), te.Prefill()]

    def _machine(self, at: float) -> list[te.Action]:
        self.disposition.set(Disposition.VOICEMAIL, "amd")
        if self.campaign.voicemail.action == "hangup":
            self.ended_by = "voicemail"
            return self._end(None, at)
        self.mode = "voicemail"
        # The message is rendered now and held: it plays the moment the beep ends (on a
        # busy box its render took 3 s, and some mailboxes stop on silence).
        task = self._slot_for("ending", False, held=True)
        return [te.Say(task, self._voicemail_text, False, True, True, held=True)]

    def _screened(self, ev: te.Screened) -> list[te.Action]:
        """The stream detector decided. A person (or not sure: answered as one) hears the
        held opening now; a machine gets the voicemail message after its beep, or once
        its greeting has ended."""
        if self.mode == "conversation" and ev.amd is AmdStatus.MACHINE:
            # Taken for a person, it turned out a recording (its words): stop talking
            # over it, and leave the message after its beep.
            self._owed = None
            self._forget_disclosure()
            return [*self._stop(), *self._machine(ev.at)]
        if self.mode != "screening":
            return []
        slot = self._slot
        if ev.amd is AmdStatus.MACHINE:
            self._forget_disclosure()
            acts: list[te.Action] = []
            if slot is not None:
                self._slot = None
                acts.append(te.Cancel())
            acts += self._machine(ev.at)
            if ev.beep and self.mode == "voicemail":
                acts += self._leave_voicemail(ev.at)
            return acts
        self.mode, self._heard_from = "conversation", ev.at
        self._anchor = ev.at
        if slot is None or slot.kind != "opening":  # its render failed: say it now
            return [*self._say_opening(), te.Prefill()]
        slot.held, self._live_interruptible = False, False
        return [te.Release(slot.id, 0.0), te.Prefill()]

    def _forget_disclosure(self) -> None:
        """A machine: the opening's disclosure is owed to nobody. The voicemail message
        discloses on its own (config/campaign.py checks it)."""
        self.disclosure.text = self.disclosure.carrier = self.disclosure.end = None

    def _say_opening(self) -> list[te.Action]:
        task = self._slot_for("opening", False)
        return [te.Say(task, None, False, False, True, opening=True)]

    def _end(self, line: str | None, now: float) -> list[te.Action]:
        """te.Say `line` (not interruptible), then hang up once it has played."""
        if self.mode == "ending":
            return []
        self.mode, self._ending_since = "ending", now
        return self._say(line, interruptible=False, hangup=True)

    def _leave_voicemail(self, now: float) -> list[te.Action]:
        self.ended_by = "voicemail"
        slot = self._slot
        if self.mode == "voicemail" and slot is not None and slot.held \
                and slot.kind == "ending":
            self.mode, self._ending_since = "ending", now
            slot.held = False
            return [te.Release(slot.id, 0.0)]
        return self._end(self._voicemail_text, now)

    def _opt_out(self, source: str, now: float) -> list[te.Action]:
        self.disposition.set(Disposition.OPT_OUT, source)
        self.ended_by = "opt_out"
        # On the DNC list first; then the goodbye.
        return [te.OptOutNow(source), *self._stop(), *self._end(self.lines.opt_out_confirm, now)]

    def _transfer(self, speak: bool, now: float) -> list[te.Action]:
        if not self._can_transfer:
            return [te.AddNote(ChatMessage("tool", _TRANSFER_UNAVAILABLE)),
                    *self._say(self.lines.transfer_unavailable, interruptible=True)]
        if self.disposition.value is None:
            self.disposition.set(Disposition.INTERESTED, "transfer")
        self.mode, self._ending_since = "ending", now
        return [te.TransferTo(self._slot_for("transfer", False), speak)]

    # --- the callee's speech ----------------------------------------------------------

    def _dtmf(self, digit: str, at: float) -> list[te.Action]:
        if self.mode != "conversation":
            return []
        action = self.campaign.dtmf_actions.get(digit)
        log.info("dtmf", extra={"call_id": self._call_id, "digit": digit,
                                "action": action or ""})
        if action == "opt_out":
            return self._opt_out("dtmf", at)
        if action == "end_call":
            self.ended_by = "agent"
            return [*self._stop(), *self._end(self.lines.goodbye, at)]
        if action == "transfer":
            return [*self._stop(), *self._transfer(True, at)]
        if action == "interested":
            self.disposition.set(Disposition.INTERESTED, "dtmf")
            note = f"[The caller pressed {digit}: they are interested.]"
        elif action == "callback":
            self.disposition.set(Disposition.CALLBACK, "dtmf")
            note = f"[The caller pressed {digit}: they want a call back. Ask when.]"
        else:
            note = f"[The caller pressed the key {digit}.]"
        if action is None and self._agent_active():
            return [te.AddNote(ChatMessage("user", note))]
        return [*self._stop(), te.AddNote(ChatMessage("user", note)), *self._reply(at)]

    def _tick(self, ev: te.Tick) -> list[te.Action]:
        now = ev.now
        if self.transferred_at is not None:
            if now - self.transferred_at >= self.config.transfer_grace_s:
                return self._finish()
            return []
        if self.mode == "starting":
            return []
        limit = self.campaign.silence.max_call_duration_s
        handing_over = self._slot is not None and self._slot.kind == "transfer"
        if now - self._answered >= limit and not handing_over:
            # Hard: the call never outlasts the setting, whatever is still playing.
            if self.mode != "ending":
                self.ended_by = "max_duration"
            return [te.HangupNow(), *self._finish()]
        if self.mode == "ending":
            if now - self._ending_since >= self.config.ending_grace_s:
                return [te.HangupNow(), *self._finish()]
            return []
        if self.mode == "screening":
            return []
        goodbye = self.lines.max_duration_goodbye
        if now - self._answered >= limit - self._lead_s(goodbye):
            # Early enough that the goodbye is heard whole before the limit.
            self.ended_by = "max_duration"
            return [*self._stop(), *self._end(goodbye, now)]
        if self.mode == "voicemail":
            if now - ev.last_voice >= self.config.voicemail_silence_s:
                return self._leave_voicemail(now)
            return []
        if self._paused_by is not None and ev.callee_active and self._utt_started is not None \
                and now - self._utt_started > self.config.backchannel_max_s:
            return self._stop()  # too long for a backchannel: a barge-in
        if self._slot is not None or self._queued() > 0 or ev.callee_active \
                or self._paused_by is not None:
            return []
        if self._anchor_pending:
            self._anchor, self._anchor_pending = now, False
        silent = now - self._anchor
        silence = self.campaign.silence
        if silent >= silence.hangup_after_s:
            self.ended_by = "silence"
            return self._end(self.lines.silence_goodbye, now)
        if silent >= silence.reprompt_after_s and not self._reprompted:
            self._reprompted = True
            return self._say(self.lines.reprompt, interruptible=True, restart_silence=False)
        return []

    def _lead_s(self, line: str) -> float:
        """How long before the limit `line` must start to end by it: its estimated
        spoken length plus the render and the line's latency."""
        return len(line) * self.config.speech_s_per_char + self.config.goodbye_margin_s


_TRANSFER_UNAVAILABLE = ('{"transfer": "error", "error": "no transfer target '
                         'configured"}')


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)
