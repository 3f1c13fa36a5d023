"""The agent's LLM: llama.cpp on a local GGUF, streamed token by token.

Generation runs on one dedicated thread (a llama.cpp context serves one sequence at a
time) and hands text back through an asyncio queue, one piece per request of the
consumer (so a consumer that pauses pauses the decoding); closing or cancelling the
consumer sets a flag the thread checks after every token, so it stops within one token. The
prompt cache of llama.cpp reuses the longest common token prefix of consecutive prompts,
so the reply-format block goes first and the system prompt stays byte-identical.

With tools, a real model is driven over the raw chat-template text, so no forward pass
is spent on the reply's fixed JSON: the prompt already ends in `{"tool":`. Its next-token
logits are read straight after evaluating it, with no grammar and no sampling call: when
` null` beats every other token the tool grammar allows first (` {`-tokens, ` `, ` n`,
...), which is nearly every turn, ` null, "say": "` is appended as prompt text and the
speech is sampled without a grammar in one completion. Otherwise the model writes the tool
object with no grammar, kept when it fits the tool schema (llm_tool_check); one that does
not is written again under a small grammar (checked against the whole 150k-token
vocabulary at every step: ~15 ms a token more, so used only then). Then the speech, as
above. Either way the speech streams until its string closes. Objects without a chat
template (test doubles) get the one-call path.

Prefill and the background warm-up after each reply also evaluate the header of the
callee's next turn (`<|im_start|>user\n`), so a reply's critical path holds only the
callee's words, the end of their turn and `{"tool":`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Sequence,
)
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from televox_pbx.voice.engines.llm_eval import SLICE, Stopped, eval_prompt
from televox_pbx.voice.engines.llm_reply import (
    ReplyStreamParser,
    ToolSpec,
    format_instructions,
    normalize_tools,
    reply_schema,
    wrap_assistant,
)
from televox_pbx.voice.engines.llm_states import KvStates
from televox_pbx.voice.engines.llm_template import (
    NULL,
    _chat_template,
    _tool_schema,
    _tool_starts,
    _upto_next_turn,
)
from televox_pbx.voice.engines.llm_tool_check import first_value, matches
from televox_pbx.voice.engines.llm_worker import ContextWorker, Yielder
from televox_pbx.voice.engines.scheduler import OWNER
from televox_pbx.voice.interfaces import ChatMessage, LlmDelta

log = logging.getLogger(__name__)

_DONE = object()
_PARKED = object()
# The head stops before the space: " null" is one token, and a prompt ending in a space
# would push the model off its usual tokens (it then chose a tool far too often).
_HEAD = '{"tool":'
_NULL = NULL
_SAY = ', "say": "'


class LlamaLlm:
    parks = True  # stream() takes a `yielder` (engines/scheduled.py)

    def __init__(self, llama: Any, *, max_tokens: int = 160, temperature: float = 0.2,
                 state_cache_bytes: int = 0) -> None:
        """`llama` is a llama_cpp.Llama (or anything with its create_chat_completion).
        `state_cache_bytes`: RAM for saved KV states (see llm_states), real models only."""
        self._llama = llama
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._grammars: dict[str, Any] = {}
        self._warm_stop = threading.Event()  # the warm-up under way, if any
        self._template = _chat_template(llama)
        self._states = (KvStates(llama, state_cache_bytes)
                        if state_cache_bytes > 0 and self._template is not None else None)
        self._worker = ContextWorker(llama, self._states)
        # Off: always take the grammar path for the tool value (kept for comparisons).
        self.logit_tool_step = True
        self.null_by_logits = 0  # replies whose `null` was read off the logits
        # Off: a tool call is always written under the grammar (kept for comparisons).
        self.free_tool_step = True
        self.tools_written_freely = 0  # tool calls the model wrote fitting with no grammar
        self._tool_starts = _tool_starts(llama) if self._template is not None else None

    @property
    def parked(self) -> int:
        """Streams that gave the context up mid-reply."""
        return self._worker.parked

    @classmethod
    def load(cls, model_path: Path, *, n_ctx: int = 4096, n_threads: int = 2,
             state_cache_bytes: int = 256 << 20, **kwargs: Any) -> LlamaLlm:
        """`state_cache_bytes`: RAM for saved KV states, so calls that take turns on the one
        context each resume from their own history instead of re-reading the prompt.
        `n_ctx`: the system prompt with its examples is ~1100 tokens and each exchange
        ~80, so 2048 ran out after about a dozen turns (the KV cache costs 28 KB a token)."""
        if not model_path.is_file():
            raise FileNotFoundError(f"LLM model file missing: {model_path}")
        from llama_cpp import Llama  # loads the native library: paid at load time only

        llama = Llama(str(model_path), n_ctx=n_ctx, n_threads=n_threads,
                      n_threads_batch=n_threads, verbose=False)
        return cls(llama, state_cache_bytes=state_cache_bytes, **kwargs)

    async def stream(self, messages: Sequence[ChatMessage],
                     tools_schema: dict[str, Any] | None = None, *,
                     yielder: Yielder | None = None) -> AsyncIterator[LlmDelta]:
        """Plain text without tools; with tools, the JSON reply format (see llm_reply):
        a validated ToolCall delta (if any) first, then the speech as it is generated.
        `yielder`: between pieces, the stream may park (see llm_park)."""
        tools = normalize_tools(tools_schema)
        prompt = self._messages(messages, tools)
        parser = ReplyStreamParser({t.name for t in tools}) if tools else None
        if tools and self._template is not None:
            text = self._template(prompt)
            schema = _tool_schema(tools)
            tool_grammar = self._grammar(schema, lead_space=True)
            run: Callable[[], Generator[str, None, None]] = partial(
                self._two_step, text, tool_grammar, schema)
        else:
            grammar = self._grammar(reply_schema(tools)) if tools else None
            run = partial(self._chat, prompt, grammar)
        spoken: list[str] = []
        # aclosing: stop the worker the moment our consumer goes away, not at GC time.
        async with contextlib.aclosing(self._worker.generate(run, yielder)) as gen:
            async for piece in gen:
                if parser is None:
                    yield LlmDelta(text=piece)
                    continue
                said, calls = parser.feed(piece)
                for call in calls:
                    yield LlmDelta(tool_call=call)
                if said:
                    spoken.append(said)
                    yield LlmDelta(text=said)
                if parser.say_done:
                    parser.feed("}")
                    break
        if parser is not None and parser.say_done and parser.tool_seen and parser.tool is None \
                and parser.tool_error is None:
            # The next prompt will replay this reply (as the session records it, clauses
            # joined by single spaces): evaluate it now, while it is being spoken.
            said_text = " ".join("".join(spoken).split())
            self._warm([*prompt, {"role": "assistant", "content": wrap_assistant(said_text)}])
        if parser is not None and (parser.tool_error or not parser.complete):
            log.warning("LLM reply was not complete valid JSON",
                        extra={"tool_error": parser.tool_error, "complete": parser.complete})

    async def prefill(self, messages: Sequence[ChatMessage],
                      tools_schema: dict[str, Any] | None = None, *,
                      shared: Sequence[ChatMessage] = ()) -> None:
        """Evaluate a prompt (e.g. just the system message) so the next reply that starts
        with it only pays for the new tokens. Useful while the phone is ringing.
        `shared`: the start of it that every call of the campaign has (its stable
        prompt), evaluated first and kept for them all; the rest is the calling task's
        call's, and goes when it ends (`forget`)."""
        if shared:
            await self._prefill(shared, tools_schema, owner="")
        await self._prefill(messages, tools_schema, owner=None)

    async def _prefill(self, messages: Sequence[ChatMessage],
                       tools_schema: dict[str, Any] | None, *, owner: str | None) -> None:
        tools = normalize_tools(tools_schema)
        prompt = self._messages(messages, tools)
        template = self._template
        if tools and template is not None:
            # The same text the next reply's prompt starts with, up to the callee's words.
            text = _upto_next_turn(template, prompt)
            # Slices of 64 (~1.2 s): a prefill is background work, stopped between slices
            # when a reply needs the context (engines/scheduled.py).
            run: Callable[[], Generator[str, None, None]] = partial(
                self._evaluate, text, None, 64)
        else:
            run = partial(self._chat, prompt, None, 1)
        async with contextlib.aclosing(self._worker.generate(run, owner=owner)) as gen:
            async for _ in gen:
                pass

    def _warm(self, prompt: list[dict[str, str]]) -> None:
        """Evaluate `prompt` on the LLM thread in the background (real models only)."""
        template = self._template
        if template is None:
            return
        text = _upto_next_turn(template, prompt)
        self._warm_stop = stop = threading.Event()
        owner = OWNER.get()

        def work() -> None:
            with self._worker.lock:
                if stop.is_set():
                    return
                self._worker.own(owner)
                with contextlib.suppress(Stopped):  # a reply came first (cancel_background)
                    for _ in self._evaluate(text, stop, slice_len=SLICE):
                        pass

        def done(future: Future[None]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning("LLM warm-up of the next prompt failed",
                            exc_info=future.exception())
        with contextlib.suppress(RuntimeError):  # the executor is closed: nothing to do
            self._worker.submit(work).add_done_callback(done)

    def _messages(self, messages: Sequence[ChatMessage],
                  tools: list[ToolSpec]) -> list[dict[str, str]]:
        out = [{"role": m.role, "content": m.content} for m in messages]
        if not tools:
            return out
        block = format_instructions(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{block}\n\n{out[0]['content']}"}
        else:
            out.insert(0, {"role": "system", "content": block})
        return [{"role": m["role"], "content": wrap_assistant(m["content"])}
                if m["role"] == "assistant" else m for m in out]

    def _grammar(self, schema_obj: dict[str, Any], *, lead_space: bool = False) -> Any:
        schema = json.dumps(schema_obj, sort_keys=False)
        key = f"{lead_space}:{schema}"
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

            gbnf = json_schema_to_gbnf(schema)
            if lead_space:  # the value follows `"tool":`, so it starts with its space
                gbnf = re.sub(r"^root ::= (.*)$", r'root ::= " " ( \1 )', gbnf, count=1,
                              flags=re.MULTILINE)
            grammar = LlamaGrammar.from_string(gbnf, verbose=False)
            if len(self._grammars) > 16:  # tool sets are per campaign: a handful at most
                self._grammars.clear()
            self._grammars[key] = grammar
        return grammar

    def _chat(self, prompt: list[dict[str, str]], grammar: Any,
              max_tokens: int | None = None) -> Generator[str, None, None]:
        chunks = self._llama.create_chat_completion(
            prompt, grammar=grammar, stream=True, max_tokens=max_tokens or self.max_tokens,
            temperature=self.temperature)
        try:
            for chunk in chunks:
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    yield text
        finally:
            chunks.close()

    def _complete(self, text: str, grammar: Any, max_tokens: int, *,
                  save: bool = True) -> Generator[str, None, None]:
        states = self._states
        if states is not None:
            states.restore_for(self._llama.tokenize(text.encode("utf-8"), special=True))
        chunks = self._llama.create_completion(
            text, grammar=grammar, stream=True, max_tokens=max_tokens,
            temperature=self.temperature)
        try:
            for chunk in chunks:
                piece = chunk["choices"][0]["text"]
                if piece:
                    yield piece
        finally:
            chunks.close()
            if states is not None and save:
                states.save()

    def cancel_background(self) -> None:
        """Stop the warm-up under way (within one 32-token slice): another call's reply
        needs the CPU now. What it evaluated stays in the context."""
        self._warm_stop.set()

    def _evaluate(self, text: str, stop: threading.Event | None = None,
                  slice_len: int | None = None) -> Generator[str, None, None]:
        """Leave `text` evaluated and saved, sampling nothing (a generator, to run like
        the others). `stop` defaults to the running generation's flag."""
        llama = self._llama
        tokens = llama.tokenize(text.encode("utf-8"), special=True)
        states = self._states
        if states is not None:
            if states.holds(tokens):
                return  # already saved as is (a campaign's prompt warmed before)
            states.restore_for(tokens)
        # Whole batches, as create_completion would: nothing waits on this but the next
        # reply, and 16-token slices made a 500-token first prompt slower (9.9 s, not 8.5).
        eval_prompt(llama, tokens, self._worker.stop_flag if stop is None else stop,
                    slice_len=slice_len or int(getattr(llama, "n_batch", SLICE)))
        if states is not None:
            states.save()
        yield from ()

    def _two_step(self, text: str, tool_grammar: Any,
                  schema: dict[str, Any]) -> Generator[str, None, None]:
        """The reply JSON, with its fixed parts given rather than generated."""
        yield _HEAD
        said = text + _HEAD + _NULL + _SAY
        if self.logit_tool_step and self._null_is_next(text + _HEAD, said):
            self.null_by_logits += 1
            yield _NULL
            yield _SAY
            # The context already holds `said` with its logits live: sampling starts now.
            yield from self._complete(said, None, self.max_tokens)
            return
        value = self._free_tool_value(text + _HEAD, schema) if self.free_tool_step else None
        if value is not None:
            self.tools_written_freely += 1
            yield value
        else:
            value = ""
            for piece in self._complete(text + _HEAD, tool_grammar, 96, save=False):
                value += piece
                yield piece
        yield _SAY
        yield from self._complete(text + _HEAD + value + _SAY, None, self.max_tokens)

    def _free_tool_value(self, prompt: str, schema: dict[str, Any]) -> str | None:
        """The tool value as the model writes it after `prompt` with no grammar, cut where
        the value ends; None when it does not fit `schema` (see llm_tool_check). Nothing
        goes to the consumer meanwhile, so the consumer's stop is checked here, token by
        token, as the worker checks it between pieces."""
        raw = ""
        stop = self._worker.stop_flag
        pieces = self._complete(prompt, None, 96, save=False)
        try:
            for piece in pieces:
                if stop is not None and stop.is_set():
                    raise Stopped
                raw += piece
                got = first_value(raw)
                if got is not None:
                    return raw[:got[1]] if matches(got[0], schema) else None
        finally:
            pieces.close()
        return None

    def _null_is_next(self, prompt: str, then: str) -> bool:
        """Evaluate `prompt` and say whether the tool value's most likely first token is
        ` null`. Greedy, where the grammar path samples at our temperature (0.2): the model
        is near-greedy there anyway, and this saves the grammar-masked sample over the whole
        vocabulary plus one more decode and completion set-up before the speech starts.
        `then` (the prompt with ` null, "say": "` after it) is evaluated in the same pass,
        its logits read at the end of `prompt`: a separate pass for those ~6 tokens cost
        ~150 ms. If the answer is no, the context is cut back to `prompt`."""
        starts = self._tool_starts
        if starts is None:
            return False
        null_id, rivals = starts
        llama = self._llama
        tokens = llama.tokenize(prompt.encode("utf-8"), special=True)
        full = llama.tokenize(then.encode("utf-8"), special=True)
        if full[:len(tokens)] != tokens:
            full = tokens  # the two texts tokenize apart at the seam: decide first
        if self._states is not None:
            self._states.restore_for(full)
        at = len(tokens) - 1
        logits = eval_prompt(llama, full, self._worker.stop_flag, logits_at=[at])[at]
        # Ties go to the grammar path: it is always correct, just slower.
        if rivals.size == 0 or logits[null_id] > logits[rivals].max():
            return True
        if llama.n_tokens > len(tokens):
            llama._ctx.kv_cache_seq_rm(-1, len(tokens), -1)
            llama.n_tokens = len(tokens)
            llama._requires_eval = True  # its live logits are those of `then`, not ours
        return False

    def forget(self, owner: str) -> Future[None] | None:
        """A call ended: its saved KV states can go (they serve no other prompt). Done on
        the LLM thread; the future says when."""
        return self._worker.forget(owner) if self._states is not None else None

    def close(self) -> None:
        self._worker.close()
