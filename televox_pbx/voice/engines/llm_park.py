"""Parking a generation mid-reply, so another call's first clause can use the context.

One llama.cpp context serves one sequence at a time. A reply that is past its first
clause (a continuation) may give the context up between two tokens: its KV state is saved
(llm_states), its sampler (grammar and penalty state) is kept aside, and the lock is freed.
When it resumes, its state is loaded back (or whatever of it is still saved, the rest
evaluated again), and llama-cpp-python's generate loop goes on where it stopped: it is
suspended just after sampling a token, and evaluates that token at `n_tokens` first.
A swap costs a save and a load of ~28 KB per context token (~30 MB for a 1100-token
prompt: tens of ms), paid only when a more urgent reply is waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from televox_pbx.voice.engines.llm_eval import eval_prompt
from televox_pbx.voice.engines.llm_states import KvStates, common_prefix


@dataclass(frozen=True, slots=True)
class Parked:
    tokens: tuple[int, ...]  # what the context held (the last sampled token is not in it)
    sampler: Any


def park(llama: Any, states: KvStates | None) -> Parked:
    """Remember the running sequence (call on the LLM thread, holding its lock)."""
    if states is not None:
        states.save()
    return Parked(tuple(int(t) for t in llama.input_ids[: llama.n_tokens]),
                  getattr(llama, "_sampler", None))


def unpark(llama: Any, states: KvStates | None, parked: Parked) -> None:
    """Put the parked sequence back, exactly: same tokens, same KV, same sampler."""
    tokens = list(parked.tokens)
    have = common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
    if have != len(tokens) or llama.n_tokens != len(tokens):
        if states is not None:
            states.restore_for(tokens)
        have = common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        if have != len(tokens) or llama.n_tokens != len(tokens):
            eval_prompt(llama, tokens)  # the saved state was evicted: evaluate it again
    if hasattr(llama, "_sampler"):
        llama._sampler = parked.sampler
