"""Saved llama.cpp KV states, one per conversation, so calls that take turns on the one
context resume from their own history instead of re-reading their whole prompt.

llama-cpp-python's own LlamaRAMCache stores `Llama.save_state()`, which also copies the
logits buffer (n_batch x vocab floats: 311 MB for Qwen2.5), taking 0.4 s per save and
overflowing any sane capacity. Only the KV data (~20 MB) and the token ids are needed:
after a restore the last token is evaluated again, which recomputes its logits.

Each state is kept in its own anonymous mapping, so dropping it gives the memory back to
the system: as 30 MB heap blocks, saved and dropped turn after turn, they fragmented
malloc's heap and the process grew by ~300 MB over a few calls that then ended.

States carry the call they are for (`owner`, set by whoever holds the context's lock).
A call's states go when it ends (`forget`), so a finished conversation costs nothing; a
state with no owner (a campaign's prompt, warmed before any call) is shared and stays
until the capacity pushes it out.
"""

from __future__ import annotations

import ctypes
import mmap
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(slots=True)
class _Saved:
    data: mmap.mmap
    size: int  # the bytes of `data` llama.cpp wrote
    owner: str  # the call it is for; "" when shared

    def release(self) -> None:
        self.data.close()


class KvStates:
    def __init__(self, llama: Any, capacity_bytes: int, min_gain_tokens: int = 16,
                 remember_forgotten: int = 4096) -> None:
        self._llama = llama
        self.capacity_bytes = capacity_bytes
        self.min_gain_tokens = min_gain_tokens  # a restore costs about this much eval
        self._items: OrderedDict[tuple[int, ...], _Saved] = OrderedDict()
        self._bytes = 0
        # The call the context works for now; set by the holder of the context's lock.
        self.owner = ""
        # Calls already forgotten: a warm-up that ran after its call ended must not save
        # a state nobody will drop (bounded: only the latest calls can still be late).
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_forgotten

    def save(self) -> None:
        """Remember the context as it is now, for `owner` (call on the LLM thread)."""
        owner = self.owner
        if owner and owner in self._forgotten:
            return
        llama = self._llama
        from llama_cpp import llama_cpp as lib

        ctx = llama._ctx.ctx
        key = tuple(int(t) for t in llama.input_ids[: llama.n_tokens])
        # One state per conversation: this one serves every prompt its own shorter ones
        # served. Never another call's, nor a shared one: those serve other calls. They
        # go first, so a call never holds two states at once, not even while saving.
        mine = [k for k in covered_by(self._items, key) if self._items[k].owner == owner]
        for stale in [key, *mine]:
            self._drop(stale)
        size = int(lib.llama_state_get_size(ctx))
        # Straight into the mapping that keeps it: a copy held two of ~30 MB at once.
        data = mmap.mmap(-1, max(size, 1))
        view = (ctypes.c_uint8 * size).from_buffer(data)
        n = int(lib.llama_state_get_data(ctx, view, size))
        del view  # the mapping is exported while the view lives: it cannot close until then
        self._items[key] = _Saved(data, n, owner)
        self._bytes += n
        while self._bytes > self.capacity_bytes and len(self._items) > 1:
            self._drop(next(iter(self._items)))

    def owners(self) -> list[str]:
        """Whose each saved state is, oldest first ("" for a shared one)."""
        return [saved.owner for saved in self._items.values()]

    def owner_of(self, tokens: Sequence[int]) -> str | None:
        """Whose the state of exactly `tokens` is, or None when there is none."""
        saved = self._items.get(tuple(tokens))
        return None if saved is None else saved.owner

    def holds(self, tokens: Sequence[int]) -> bool:
        """A state of exactly `tokens` is saved for the current owner (or shared)."""
        return self.owner_of(tokens) in ("", self.owner)

    def forget(self, owner: str) -> int:
        """Drop the states of a call that ended (on the LLM thread). Returns how many."""
        if not owner:
            return 0
        self._forgotten[owner] = None
        while len(self._forgotten) > self._remember:
            self._forgotten.popitem(last=False)
        keys = [k for k, saved in self._items.items() if saved.owner == owner]
        for key in keys:
            self._drop(key)
        return len(keys)

    def _drop(self, key: tuple[int, ...]) -> None:
        saved = self._items.pop(key, None)
        if saved is not None:
            self._bytes -= saved.size
            saved.release()

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

        saved = self._items[best_key]
        self._items.move_to_end(best_key)
        buf = (ctypes.c_uint8 * saved.size).from_buffer(saved.data)  # no copy
        try:
            loaded = int(lib.llama_state_set_data(llama._ctx.ctx, buf, saved.size))
        finally:
            del buf  # let the mapping close when the state is dropped
        if loaded != saved.size:
            raise RuntimeError("failed to restore a llama state")
        llama.input_ids[: len(best_key)] = np.asarray(best_key, dtype=np.intc)
        llama.n_tokens = len(best_key)
        llama._requires_eval = True
        return True
