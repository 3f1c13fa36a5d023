"""Saved llama.cpp KV states, one per conversation, so calls that take turns on the one
context resume from their own history instead of re-reading their whole prompt.

llama-cpp-python's own LlamaRAMCache stores `Llama.save_state()`, which also copies the
logits buffer (n_batch x vocab floats: 311 MB for Qwen2.5), taking 0.4 s per save and
overflowing any sane capacity. Only the KV data (~20 MB) and the token ids are needed:
after a restore the last token is evaluated again, which recomputes its logits.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def covered_by(keys: Iterable[tuple[int, ...]], key: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The saved keys that `key` starts with. A state for `key` serves every prompt they
    serve at least as well (restore_for goes by common prefix and trims the rest), so
    they can go: one state per conversation, not one per turn, and with a ~1100-token
    system prompt (30 MB a state) many more calls keep theirs in the cache."""
    return [k for k in keys if len(k) < len(key) and key[:len(k)] == k]


class KvStates:
    def __init__(self, llama: Any, capacity_bytes: int, min_gain_tokens: int = 16) -> None:
        self._llama = llama
        self.capacity_bytes = capacity_bytes
        self.min_gain_tokens = min_gain_tokens  # a restore costs about this much eval
        self._items: OrderedDict[tuple[int, ...], bytearray] = OrderedDict()
        self._bytes = 0

    def save(self) -> None:
        """Remember the context as it is now (call on the LLM thread)."""
        llama = self._llama
        from llama_cpp import llama_cpp as lib

        ctx = llama._ctx.ctx
        size = int(lib.llama_state_get_size(ctx))
        # One buffer, kept as is: a ctypes array copied into bytes held two copies of
        # ~30 MB at once, for every save (peak RSS grew by that per concurrent call).
        data = bytearray(size)
        view = (ctypes.c_uint8 * size).from_buffer(data)
        n = int(lib.llama_state_get_data(ctx, view, size))
        del view  # the buffer is exported while the view lives: no resizing until then
        if n < size:
            del data[n:]
        key = tuple(int(t) for t in llama.input_ids[: llama.n_tokens])
        for stale in [key, *covered_by(self._items, key)]:
            old = self._items.pop(stale, None)
            if old is not None:
                self._bytes -= len(old)
        self._items[key] = data
        self._bytes += len(data)
        while self._bytes > self.capacity_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped)

    def restore_for(self, tokens: Sequence[int]) -> bool:
        """Load the saved state sharing the longest prefix with `tokens`, if it beats what
        the context already holds. True when one was loaded."""
        llama = self._llama
        have = common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        best_key: tuple[int, ...] | None = None
        best = have + self.min_gain_tokens
        for key in self._items:
            n = common_prefix(key, tokens)
            if n > best:
                best_key, best = key, n
        if best_key is None:
            return False
        from llama_cpp import llama_cpp as lib

        data = self._items[best_key]
        self._items.move_to_end(best_key)
        buf = (ctypes.c_uint8 * len(data)).from_buffer(data)  # no copy
        if int(lib.llama_state_set_data(llama._ctx.ctx, buf, len(data))) != len(data):
            raise RuntimeError("failed to restore a llama state")
        llama.input_ids[: len(best_key)] = np.asarray(best_key, dtype=np.intc)
        llama.n_tokens = len(best_key)
        llama._requires_eval = True
        return True
