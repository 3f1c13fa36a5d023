"""A tool call the model writes with no grammar is kept only when it fits the schema
(llm_tool_check); else it is written again under the grammar (LlamaLlm._two_step)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import pytest

from televox_pbx.agent.tools import tools_schema
from televox_pbx.voice.engines.llm_eval import Stopped
from televox_pbx.voice.engines.llm_llama import LlamaLlm
from televox_pbx.voice.engines.llm_reply import normalize_tools
from televox_pbx.voice.engines.llm_template import _tool_schema
from televox_pbx.voice.engines.llm_tool_check import first_value, matches

SCHEMA = _tool_schema(normalize_tools(tools_schema(transfer_available=False)))


@pytest.mark.parametrize("value", [
    None,
    {"name": "set_disposition", "arguments": {"disposition": "NOT_INTERESTED"}},
    {"name": "set_disposition", "arguments": {"disposition": "COMPLETED", "note": "4/5"}},
    {"name": "opt_out", "arguments": {}},
    {"name": "schedule_callback", "arguments": {"when": "2026-03-03T17:00"}},
    {"name": "end_call", "arguments": {}},
])
def test_values_the_grammar_allows_fit(value: Any) -> None:
    assert matches(value, SCHEMA)


@pytest.mark.parametrize("value", [
    {"name": "set_disposition", "arguments": {"disposition": "BOOKED"}},  # not in the enum
    {"name": "set_disposition", "arguments": {}},  # its required argument is missing
    {"name": "opt_out", "arguments": {"reason": "asked"}},  # no such argument
    {"name": "schedule_callback", "arguments": {"when": 5}},  # not a string
    {"name": "transfer", "arguments": {}},  # not offered on this call
    {"name": "end_call"},  # no arguments object
    {"tool": "end_call"},
    "end_call",
    [],
    True,
])
def test_values_the_grammar_refuses_do_not_fit(value: Any) -> None:
    assert not matches(value, SCHEMA)


def test_keywords_it_does_not_know_never_fit() -> None:
    """An agent's own tool may constrain its arguments in ways not checked here: those
    are always written under the grammar."""
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}
    assert not matches({"n": 0}, schema) and not matches({"n": 3}, schema)
    assert matches({"n": 3}, {"type": "object", "properties": {"n": {"type": "integer"}}})
    assert not matches(True, {"type": "integer"}) and not matches(1, {"const": True})


def test_first_value_waits_for_a_whole_value_and_says_where_it_ends() -> None:
    assert first_value(' {"name": "opt_out", "arguments": {') is None
    text = ' {"name": "opt_out", "arguments": {}}, "say": "Bye'
    got = first_value(text)
    assert got is not None and text[:got[1]] == ' {"name": "opt_out", "arguments": {}}'
    assert first_value(" null") == (None, 5)


class _Steps:
    """LlamaLlm._complete, scripted per grammar: pieces with and without one."""

    def __init__(self, free: list[str], grammar: list[str], speech: list[str]) -> None:
        self.free, self.grammar, self.speech = free, grammar, speech
        self.prompts: list[tuple[str, bool]] = []
        self.closed = 0

    def __call__(self, text: str, grammar: Any, max_tokens: int, *,
                 save: bool = True) -> Generator[str, None, None]:
        self.prompts.append((text, grammar is not None))
        pieces = self.speech if text.endswith('"say": "') else \
            self.grammar if grammar is not None else self.free
        try:
            yield from pieces
        finally:
            self.closed += 1


def _two_step(steps: _Steps) -> tuple[str, LlamaLlm]:
    llm = LlamaLlm(object())
    llm._complete = steps  # type: ignore[method-assign]
    llm._null_is_next = lambda prompt, then: False  # type: ignore[method-assign]
    return "".join(llm._two_step("PROMPT", "GRAMMAR", SCHEMA)), llm


def test_a_tool_call_that_fits_is_kept_as_written_and_generation_stops_there() -> None:
    steps = _Steps(free=[' {"name": "opt_out",', ' "arguments": {}}', ', "say": "', "never"],
                   grammar=["unused"], speech=["Goodbye", '."}'])
    text, llm = _two_step(steps)
    assert text == '{"tool": {"name": "opt_out", "arguments": {}}, "say": "Goodbye."}'
    assert [grammar for _, grammar in steps.prompts] == [False, False]
    assert steps.prompts[1][0] == 'PROMPT{"tool": {"name": "opt_out", "arguments": {}}, "say": "'
    assert llm.tools_written_freely == 1


def test_a_tool_call_that_does_not_fit_is_written_again_under_the_grammar() -> None:
    bad = ' {"name": "set_disposition", "arguments": {"disposition": "BOOKED"}}'
    good = ' {"name": "set_disposition", "arguments": {"disposition": "INTERESTED"}}'
    steps = _Steps(free=[bad[:30], bad[30:]], grammar=[good[:30], good[30:]],
                   speech=["Thank you", '."}'])
    text, llm = _two_step(steps)
    assert text == '{"tool":' + good + ', "say": "Thank you."}'
    assert [grammar for _, grammar in steps.prompts] == [False, True, False]
    assert llm.tools_written_freely == 0


def test_free_writing_off_takes_the_grammar_at_once() -> None:
    good = ' {"name": "end_call", "arguments": {}}'
    steps = _Steps(free=["unused"], grammar=[good], speech=["Bye", '."}'])
    llm = LlamaLlm(object())
    llm.free_tool_step = False
    llm._complete = steps  # type: ignore[method-assign]
    llm._null_is_next = lambda prompt, then: False  # type: ignore[method-assign]
    assert "".join(llm._two_step("P", "G", SCHEMA)) == '{"tool":' + good + ', "say": "Bye."}'
    assert [grammar for _, grammar in steps.prompts] == [True, False]


def test_a_consumer_that_left_stops_the_free_writing_within_a_token() -> None:
    """Nothing reaches the consumer while the value is written, so the worker's check
    between pieces cannot see the stop: the writing checks it itself."""
    llm = LlamaLlm(object())
    stop = threading.Event()
    llm._worker.stop_flag = stop
    written: list[str] = []

    def complete(text: str, grammar: Any, max_tokens: int, *,
                 save: bool = True) -> Generator[str, None, None]:
        for piece in [' {"name":', ' "opt_out",', ' "arguments":', " {}}"]:
            written.append(piece)
            if len(written) == 2:
                stop.set()  # the callee hung up
            yield piece
    llm._complete = complete  # type: ignore[method-assign]
    with pytest.raises(Stopped):
        llm._free_tool_value("P", SCHEMA)
    assert len(written) == 2
