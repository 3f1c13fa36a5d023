"""Evaluating prompt tokens on a llama.cpp context (on the LLM thread).

- The longest cached prefix is reused exactly as Llama.generate does (keep in step with
  llama-cpp-python 0.3.x), so a following create_completion evaluates only what it adds.
- The rest goes in slices of up to 32 tokens, so a prompt nobody needs any more (a
  dropped provisional turn) is abandoned between slices instead of holding the context
  for its whole length. A reply's critical path (the callee's words, the end of their
  turn and the reply's fixed JSON head) is 17-32 tokens on nearly every turn: one pass.
- A slice is padded up to the next multiple of 16, which the CPU kernels are fast at,
  when it is 10-15 tokens past one: on the 2-core AVX2 box llama.cpp evaluates 16 tokens
  in ~300 ms but 10-15 in 290-400 ms, and 32 in ~540 ms but 27-31 in 550-635 ms
  (`bench/bench_llm_batch_sizes.py` prints the table). Padding tokens sit after the real
  ones, which never attend to them, and their KV cells are removed straight after.
- Logits can be read at chosen positions of the same pass, so one pass can both decide
  something at an earlier token and leave the context ready to sample after the last.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from televox_pbx.voice.engines.llm_states import common_prefix

SLICE = 32  # tokens per slice: ~0.55 s on 2 cores, the longest a dropped turn holds on
PAD_UNIT = 16  # the kernels' fast batch multiple
PAD_FROM = 10  # a slice this many tokens past a multiple of PAD_UNIT is padded to the next


class Stopped(Exception):
    """The evaluation was abandoned between slices."""


def plan_slices(n: int, *, slice_len: int = SLICE, pad_from: int = PAD_FROM
                ) -> list[tuple[int, int]]:
    """`n` tokens as (real, evaluated) slices of at most `slice_len`, each padded up to the
    next multiple of PAD_UNIT (never past `slice_len`) when it is at least `pad_from`
    tokens past one."""
    plan: list[tuple[int, int]] = []
    for start in range(0, n, slice_len):
        real = min(slice_len, n - start)
        over = real % PAD_UNIT
        padded = real + PAD_UNIT - over if over >= pad_from else real
        plan.append((real, min(padded, slice_len)))  # real <= slice_len already
    return plan


def eval_prompt(llama: Any, tokens: Sequence[int], stop: threading.Event | None = None, *,
                logits_at: Sequence[int] = (), slice_len: int = SLICE
                ) -> dict[int, npt.NDArray[np.float32]]:
    """Leave `tokens` evaluated with the last one's logits live; return copies of the
    logits at the positions `logits_at` (for a real context; test doubles give none).
    Raises Stopped if `stop` is set between slices."""
    tokens = list(tokens)
    have = common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
    if have == len(tokens) == llama.n_tokens and not llama._requires_eval and not logits_at:
        return {}  # already evaluated by a live decode: its logits are still current
    # All of it is cached but its logits are not current (a restored state, or the cache
    # runs on past it): replay the last token to get them back.
    reuse = have - 1 if have == len(tokens) else have
    if logits_at:
        reuse = min(reuse, min(logits_at))
    if reuse > 0 and llama._ctx.kv_cache_seq_rm(-1, reuse, -1):
        llama.n_tokens = reuse
    else:
        reuse = 0
        llama.reset()
    out: dict[int, npt.NDArray[np.float32]] = {}
    pos = reuse
    for real, padded in plan_slices(len(tokens) - reuse, slice_len=slice_len):
        if stop is not None and stop.is_set():
            raise Stopped
        wanted = [i - pos for i in logits_at if pos <= i < pos + real]
        got = _decode(llama, tokens[pos:pos + real], padded, wanted)
        out.update({pos + i: row for i, row in got.items()})
        pos += real
    return out


def _decode(llama: Any, piece: list[int], padded: int, wanted: list[int]
            ) -> dict[int, npt.NDArray[np.float32]]:
    """One llama_decode of `piece` (+ padding) at the end of the context."""
    holder = getattr(llama, "_batch", None)
    if holder is None:  # a test double: Llama.eval's bookkeeping is all there is
        llama.eval(piece)
        return {}
    n_past = int(llama.n_tokens)
    padded = max(len(piece), min(padded, int(llama.n_ctx()) - n_past))  # room in the context
    llama._ctx.kv_cache_seq_rm(-1, n_past, -1)
    batch = holder.batch
    last = len(piece) - 1
    batch.n_tokens = padded
    for i in range(padded):
        batch.token[i] = piece[min(i, last)]
        batch.pos[i] = n_past + i
        batch.seq_id[i][0] = 0
        batch.n_seq_id[i] = 1
        batch.logits[i] = i == last or i in wanted
    llama._ctx.decode(holder)
    n_vocab = int(llama.n_vocab())
    rows = {i: np.ctypeslib.as_array(llama._ctx.get_logits_ith(i), shape=(n_vocab,)).copy()
            for i in wanted}
    if padded > len(piece):
        llama._ctx.kv_cache_seq_rm(-1, n_past + len(piece), -1)
    # What Llama.eval records, so create_completion reuses this as a cached prefix and
    # samples from the live logits (those of the last real token: padding has none).
    llama.input_ids[n_past:n_past + len(piece)] = piece
    llama.n_tokens = n_past + len(piece)
    llama._requires_eval = False
    return rows
