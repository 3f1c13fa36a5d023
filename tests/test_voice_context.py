"""The conversation log: the owed reply follows a callee turn; replies know when they
played; the transcript is in the order the turns began."""

from __future__ import annotations

from datetime import UTC, datetime

from voice_fakes import FakeOutput

from televox_pbx.clock import FakeClock
from televox_pbx.voice.context import CalleeSaid, Conversation
from televox_pbx.voice.disclosure import Disclosure
from televox_pbx.voice.interfaces import ChatMessage
from televox_pbx.voice.playback import Playback, Reply


def reply(text: str, started: float, first_frame: float | None,
          speech_end: float | None = None) -> Reply:
    """`speech_end`: the end of the callee turn it answers (None: the opening, a line)."""
    r = Reply(text_parts=[text], started=started, first_frame=first_frame,
              speech_end=speech_end)
    r.final_text = text
    return r


def roles_and_text(conv: Conversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conv.messages()[1:]]


def test_what_the_callee_said_while_an_answer_waited_comes_after_it() -> None:
    """The owed reply must follow a callee turn: put before the answer it had not yet
    heard, the owed reply continued the agent's own answer instead."""
    conv = Conversation(ChatMessage("system", "You are Ava."))
    conv.add_reply(reply("Hi Sam, this is Ava, an AI assistant.", 0.0, 0.3))
    conv.add_callee(CalleeSaid("Hello?", 0.5, 0.9))
    # The answer to "Hello?" waits for the opening to end (at 7 s) ...
    conv.add_reply(answer := reply("Hello! How are you?", 1.5, None, speech_end=0.9))
    # ... and the callee says more before it plays, then more after it.
    conv.add_callee(CalleeSaid("This is Sam speaking.", 2.0, 3.0))
    answer.first_frame = 7.0
    conv.add_callee(CalleeSaid("What is it about?", 8.5, 9.0))
    assert roles_and_text(conv) == [
        ("assistant", "Hi Sam, this is Ava, an AI assistant."),
        ("user", "Hello?"),
        ("assistant", "Hello! How are you?"),
        ("user", "This is Sam speaking. What is it about?"),  # no reply between: one turn
    ]
    # The transcript, though, shows each turn where it was said or heard: the answer
    # after the words said while it waited, numbered in that order.
    rows = conv.rows(lambda t: datetime.fromtimestamp(1e9 + t, UTC))
    assert [(r.turn, r.speaker, r.text) for r in rows] == [
        (1, "agent", "Hi Sam, this is Ava, an AI assistant."), (2, "callee", "Hello?"),
        (3, "callee", "This is Sam speaking."), (4, "agent", "Hello! How are you?"),
        (5, "callee", "What is it about?")]
    assert rows[3].started_at == datetime.fromtimestamp(1e9 + 7.0, UTC)


def test_callee_turns_with_no_reply_heard_between_are_one_message() -> None:
    """On the real PBX, "Yes." and "I have a minute. What is it about?" as two user
    messages in a row got an echo of the second, or a decline; the transcript keeps both."""
    conv = Conversation(ChatMessage("system", "You are Ava."))
    conv.add_reply(reply("Hi Sam, this is Ava, an AI assistant.", 0.0, 0.3))
    conv.add_callee(CalleeSaid("Yes.", 1.0, 1.3))
    unheard = reply("", 1.4, None, speech_end=1.3)  # dropped before a word played
    unheard.final_text = ""
    conv.add_reply(unheard)
    conv.add_callee(CalleeSaid("I have a minute.", 2.0, 2.8))
    conv.add_callee(CalleeSaid("What is it about?", 3.0, 3.6))
    assert roles_and_text(conv)[1:] == [
        ("user", "Yes. I have a minute. What is it about?")]
    # A provisional turn's words join the run they follow, as they will once logged.
    assert conv.messages("Tuesday?")[-1].content == "Yes. I have a minute. What is it " \
        "about? Tuesday?"
    conv.add_note(ChatMessage("user", "[The callee pressed 1.]"))
    conv.add_callee(CalleeSaid("That's all.", 5.0, 5.5))
    assert roles_and_text(conv)[2:] == [("user", "[The callee pressed 1.]"),
                                        ("user", "That's all.")]
    rows = conv.rows(lambda t: datetime.fromtimestamp(1e9 + t, UTC))
    assert [r.text for r in rows if r.speaker == "callee"] == [
        "Yes.", "I have a minute.", "What is it about?", "That's all."]


def test_the_opening_keeps_its_place_though_its_audio_came_late() -> None:
    """A callee who spoke before the opening's first audio (its render was slow) is still
    logged after it: the opening's place keeps the call's prompt as prefilled."""
    conv = Conversation(ChatMessage("system", "You are Ava."))
    conv.add_reply(reply("Hi Sam, this is Ava, an AI assistant.", 0.0, 2.0))
    conv.add_callee(CalleeSaid("Yes, tell me more.", 0.5, 1.5))
    assert [role for role, _ in roles_and_text(conv)] == ["assistant", "user"]
    # So is the transcript (the simulator's callee spoke before a slow opening's audio,
    # in a full CI run).
    rows = conv.rows(lambda t: datetime.fromtimestamp(1e9 + t, UTC))
    assert [r.speaker for r in rows] == ["agent", "callee"]


def test_words_over_a_reply_that_was_playing_stay_after_it() -> None:
    conv = Conversation(ChatMessage("system", "You are Ava."))
    conv.add_reply(reply("The visit is on Monday at ten.", 0.0, 0.2))
    conv.add_callee(CalleeSaid("Uh-huh.", 1.0, 1.3, backchannel=True))
    assert [role for role, _ in roles_and_text(conv)] == ["assistant", "user"]


def test_a_reply_queued_behind_another_learns_when_it_began_to_play() -> None:
    clock = FakeClock()
    out = FakeOutput(clock)
    playback = Playback(out, Disclosure())
    out.add_listener(playback.on_frame)
    opening, answer, later = Reply(), Reply(), Reply()
    playback.open(opening)
    playback.enqueue(opening, "Hi, I'm Ava.", bytes(640), True)  # two frames
    playback.open(answer)
    playback.enqueue(answer, "Hello!", bytes(640), True)
    playback.open(later)  # the next reply is opened before the answer plays
    out.send_frame(0, 1.0)
    out.send_frame(1, 1.02)
    assert opening.first_frame == 1.0 and answer.first_frame is None
    out.send_frame(2, 1.04)
    assert answer.first_frame == 1.04 and later.first_frame is None
