"""The turn-taking core alone: events in, actions out. No audio, no models, no tasks;
time is what the events say, the agent's queued audio what the test sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from televox_pbx.agent.dispositions import DispositionState
from televox_pbx.agent.prompts import LINES
from televox_pbx.agent.tools import EndCall
from televox_pbx.config.campaign import Campaign
from televox_pbx.domain import AmdStatus, Disposition
from televox_pbx.voice import turn_events as te
from televox_pbx.voice.call_setup import SessionConfig
from televox_pbx.voice.context import CalleeSaid
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.turntaking import TurnTaking

CAMPAIGN = Campaign.model_validate({
    "name": "core", "caller_id": "+15550100000", "trunk": "trunk",
    "agent": {"persona_name": "Ava", "business": "Acme", "goal": "Talk.",
              "opening_line": "Hi, this is Ava, an AI assistant from Acme."},
    "dtmf_actions": {"9": "opt_out", "1": "interested"},
    "silence": {"reprompt_after_s": 4, "hangup_after_s": 10},
})


@dataclass
class Line:
    queued: float = 0.0  # seconds of agent audio waiting to be sent


class Core:
    def __init__(self, campaign: Campaign = CAMPAIGN, **config: Any) -> None:
        self.line = Line()
        self.disclosure = Disclosure()
        self.disposition = DispositionState()
        self.tt = TurnTaking(campaign, SessionConfig(**config), self.disclosure,
                             self.disposition, lambda: self.line.queued, can_transfer=False,
                             voicemail_text="Please call back.")
        self.seq = 100

    def __call__(self, ev: te.Event) -> list[te.Action]:
        return self.tt.handle(ev)

    def opened(self, amd: AmdStatus | None = None) -> te.Say:
        [say, _prefill] = self(te.CallStarted(0.0, amd))
        assert isinstance(say, te.Say) and say.opening
        return say

    def talking(self) -> None:
        """The opening was said; the agent is idle."""
        say = self.opened()
        assert self(te.AgentDone(say.task, te.Outcome(), 1.0)) == []

    def replying(self) -> int:
        """The agent is saying a long reply to the callee (task running, audio queued)."""
        self.talking()
        acts = self.utterance(2.0, 3.0, "Tell me about it.")
        release = acts[-1]
        assert isinstance(release, te.Release)
        self.line.queued = 5.0
        return release.task

    def utterance(self, start: float, end: float, text: str, *,
                  provisional: bool = True) -> list[te.Action]:
        """The callee speaks from `start` to `end`; transcribed at the first pause."""
        self.seq += 1
        acts = self(te.SpeechStarted(start))
        if provisional:
            acts += self(te.SpeechPaused(self.seq, start, end, b"pcm"))
            acts += self(te.Transcribed(self.seq, text, end + 0.15))
        acts += self(te.SpeechStopped(self.seq, start, end, end + 0.7, b"pcm", provisional))
        if not provisional:
            acts += self(te.Transcribed(self.seq, text, end + 0.85))
        return acts


def kinds(acts: list[te.Action]) -> list[str]:
    return [type(a).__name__ for a in acts]


def test_a_person_gets_the_opening_and_a_machine_does_not() -> None:
    core = Core()
    say = core.opened()
    assert not say.interruptible and not say.hangup
    machine = Core()
    [bye] = machine(te.CallStarted(0.0, AmdStatus.MACHINE))
    assert isinstance(bye, te.Say) and bye.hangup and bye.line is None
    assert machine.disposition.value is Disposition.VOICEMAIL
    assert machine.tt.ended_by == "voicemail"


def test_a_turn_is_prepared_at_the_pause_and_released_at_the_endpoint() -> None:
    core = Core()
    core.talking()
    acts = core(te.SpeechStarted(2.0))
    assert acts == []
    acts = core(te.SpeechPaused(1, 2.0, 3.0, b"audio"))
    assert acts == [te.Transcribe(1, b"audio")]
    [reply] = core(te.Transcribed(1, "Yes, tell me more.", 3.2))
    assert isinstance(reply, te.OpenTurn) and reply.held and reply.user == "Yes, tell me more."
    acts = core(te.SpeechStopped(1, 2.0, 3.0, 3.7, b"audio", True))
    assert acts == [te.Record(CalleeSaid("Yes, tell me more.", 2.0, 3.0)),
                    te.Release(reply.task, 700.0)]


def test_speech_after_the_pause_drops_the_provisional_reply() -> None:
    core = Core()
    core.talking()
    core(te.SpeechStarted(2.0))
    core(te.SpeechPaused(1, 2.0, 3.0, b"a"))
    core(te.Transcribed(1, "Yes,", 3.2))
    assert core(te.SpeechResumed(1)) == [te.Cancel()]
    acts = core(te.SpeechStopped(2, 2.0, 4.0, 4.7, b"ab", False))
    assert acts == [te.Transcribe(2, b"ab")]
    acts = core(te.Transcribed(2, "Yes, tell me more.", 4.9))
    assert kinds(acts) == ["Record", "OpenTurn"]
    assert isinstance(acts[1], te.OpenTurn) and not acts[1].held


def test_speech_over_the_agent_pauses_it_and_a_real_turn_stops_it() -> None:
    core = Core()
    core.replying()
    assert core(te.SpeechStarted(5.0)) == [te.Pause()]
    core(te.SpeechPaused(1, 5.0, 5.8, b"a"))
    acts = core(te.Transcribed(1, "How much is it?", 6.0))
    assert kinds(acts) == ["Stop", "OpenTurn"], "barge-in: stopped, and answered"


def test_a_backchannel_over_the_agent_resumes_it_and_is_recorded() -> None:
    core = Core()
    core.replying()
    acts = core.utterance(5.0, 5.4, "Uh-huh.")
    assert kinds(acts) == ["Pause", "Transcribe", "Resume", "Record"]
    record = acts[-1]
    assert isinstance(record, te.Record) and record.said.backchannel
    assert not any(isinstance(a, te.OpenTurn) for a in acts), "not answered"


def test_noise_over_the_agent_resumes_it_and_leaves_nothing() -> None:
    core = Core()
    core.replying()
    acts = core.utterance(5.0, 5.2, "")
    assert kinds(acts) == ["Pause", "Transcribe", "Resume"]


def test_a_backchannel_when_the_agent_has_finished_is_a_turn() -> None:
    core = Core()
    task = core.replying()
    assert core(te.AgentDone(task, te.Outcome(spoke=True), 4.0)) == []
    core.line.queued = 0.2  # the last word of its question
    acts = core.utterance(5.0, 5.4, "Yes.")
    assert kinds(acts)[-2:] == ["Record", "Release"], "answered"


def test_long_speech_over_the_agent_is_a_barge_in_before_its_transcript() -> None:
    core = Core()
    core.replying()
    core(te.SpeechStarted(5.0))
    assert core(te.Tick(5.9, True, 5.9)) == []
    assert core(te.Tick(6.1, True, 6.1)) == [te.Stop()]


def test_backchannel_that_goes_on_pauses_the_agent_again() -> None:
    core = Core()
    core.replying()
    core(te.SpeechStarted(5.0))
    core(te.SpeechPaused(1, 5.0, 5.3, b"a"))
    assert core(te.Transcribed(1, "Yes,", 5.5)) == [te.Resume()]
    assert core(te.SpeechResumed(1)) == [te.Pause()], "they went on: not a backchannel"


def test_speech_over_the_opening_is_recorded_and_answered_after_it() -> None:
    core = Core()
    say = core.opened()
    core.line.queued = 6.0
    acts = core.utterance(1.0, 1.6, "Hello? Who is this?")
    assert kinds(acts) == ["Transcribe", "Record"], "the opening is not cut; no reply yet"
    [reply] = core(te.AgentDone(say.task, te.Outcome(), 2.0))
    assert isinstance(reply, te.OpenTurn) and reply.speech_end == 1.6


def test_a_backchannel_over_the_opening_is_kept_but_not_answered() -> None:
    core = Core()
    say = core.opened()
    core.line.queued = 6.0
    acts = core.utterance(1.0, 1.3, "Yes,")
    assert kinds(acts) == ["Transcribe", "Record"]
    assert core(te.AgentDone(say.task, te.Outcome(), 2.0)) == []


def test_a_turn_cut_off_before_its_transcript_is_heard_again_with_what_follows() -> None:
    core = Core()
    core.talking()
    core(te.SpeechStarted(2.0))
    assert core(te.SpeechStopped(1, 2.0, 3.0, 3.7, b"first", False)) == [
        te.Transcribe(1, b"first")]
    assert core(te.SpeechStarted(3.8)) == [te.CancelTranscribe(1)]
    acts = core(te.SpeechStopped(2, 3.8, 4.5, 5.2, b"+second", False))
    assert acts == [te.Transcribe(2, b"first+second")]
    acts = core(te.Transcribed(2, "Yes, Tuesday at three.", 5.4))
    assert acts[0] == te.Record(CalleeSaid("Yes, Tuesday at three.", 2.0, 4.5))


def test_an_opt_out_acts_on_the_confirmed_turn_before_the_goodbye() -> None:
    core = Core()
    core.talking()
    core(te.SpeechStarted(2.0))
    core(te.SpeechPaused(1, 2.0, 3.0, b"a"))
    assert core(te.Transcribed(1, "Take me off your list.", 3.2)) == [], "not yet confirmed"
    acts = core(te.SpeechStopped(1, 2.0, 3.0, 3.7, b"a", True))
    assert kinds(acts) == ["Record", "OptOutNow", "Stop", "Say"]
    bye = acts[-1]
    assert isinstance(bye, te.Say) and bye.hangup and bye.line == LINES.opt_out_confirm
    assert core.disposition.value is Disposition.OPT_OUT and core.tt.ended_by == "opt_out"


def test_silence_reprompts_then_says_goodbye() -> None:
    core = Core()
    core.talking()
    assert core(te.Tick(1.02, False, 0.0)) == []  # the silence starts now
    assert core(te.Tick(4.0, False, 0.0)) == []
    [prompt] = core(te.Tick(5.03, False, 0.0))
    assert isinstance(prompt, te.Say) and prompt.line == LINES.reprompt
    assert core(te.AgentDone(prompt.task, te.Outcome(restart_silence=False), 6.0)) == []
    [bye] = core(te.Tick(11.03, False, 0.0))
    assert isinstance(bye, te.Say) and bye.hangup and core.tt.ended_by == "silence"


def test_keys() -> None:
    core = Core()
    core.talking()
    acts = core(te.DtmfPressed("1", 2.0))
    assert kinds(acts) == ["Stop", "AddNote", "OpenTurn"]
    assert core.disposition.value is Disposition.INTERESTED
    assert kinds(core(te.DtmfPressed("9", 3.0))) == ["OptOutNow", "Stop", "Say"]


def test_the_end_call_tool_after_a_reply_says_goodbye_only_if_nothing_was_said() -> None:
    core = Core()
    core.talking()
    acts = core.utterance(2.0, 3.0, "No thanks.")
    reply = acts[-1]
    assert isinstance(reply, te.Release)
    [bye] = core(te.AgentDone(reply.task, te.Outcome(EndCall(), spoke=True), 4.0))
    assert isinstance(bye, te.Say) and bye.hangup and bye.line is None
    assert core.tt.ended_by == "agent"


LIMITED = CAMPAIGN.model_copy(update={"silence": CAMPAIGN.silence.model_copy(
    update={"max_call_duration_s": 25.0, "hangup_after_s": 60.0})})


def test_the_max_duration_goodbye_starts_early_and_the_limit_is_hard() -> None:
    core = Core(LIMITED, speech_s_per_char=0.07, goodbye_margin_s=1.0)
    core.talking()
    lead = len(LINES.max_duration_goodbye) * 0.07 + 1.0
    assert core(te.Tick(25.0 - lead - 0.1, False, 2.0)) == []
    acts = core(te.Tick(25.0 - lead, False, 2.0))
    assert kinds(acts) == ["Stop", "Say"]
    bye = acts[1]
    assert isinstance(bye, te.Say) and bye.hangup and bye.line == LINES.max_duration_goodbye
    core.line.queued = 10.0  # the goodbye played slower than estimated
    assert core(te.Tick(24.9, False, 2.0)) == []
    assert kinds(core(te.Tick(25.0, False, 2.0))) == ["HangupNow", "Finish"]
    assert core.tt.ended_by == "max_duration"


def test_the_call_length_counts_from_the_answer_not_the_connect() -> None:
    """AMD() in the dialplan ran 4 s between the answer and the audio connecting."""
    core = Core(LIMITED, speech_s_per_char=0.07, goodbye_margin_s=1.0)
    [say, _] = core(te.CallStarted(4.0, AmdStatus.HUMAN, answered=0.0))
    assert isinstance(say, te.Say) and say.opening
    assert core(te.AgentDone(say.task, te.Outcome(), 5.0)) == []
    lead = len(LINES.max_duration_goodbye) * 0.07 + 1.0
    assert core(te.Tick(25.0 - lead - 0.1, False, 5.0)) == []
    assert kinds(core(te.Tick(25.0 - lead, False, 5.0))) == ["Stop", "Say"]
    core.line.queued = 10.0
    assert kinds(core(te.Tick(25.0, False, 5.0))) == ["HangupNow", "Finish"]
