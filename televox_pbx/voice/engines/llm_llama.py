"""The agent's LLM: llama.cpp on a local GGUF, streamed token by token.

Generation runs on one dedicated thread (a llama.cpp context serves one sequence at a
time) and hands text back through an asyncio queue; closing or cancelling the consumer
sets a flag the thread checks after every token, so it stops within one token. The
prompt cache of llama.cpp reuses the longest common token prefix of consecutive prompts,
so the reply-format block goes first and the system prompt stays byte-identical.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from televox_pbx.voice.engines.llm_reply import (
    ReplyStreamParser,
    ToolSpec,
    format_instructions,
    normalize_tools,
    reply_schema,
    wrap_assistant,
)
from televox_pbx.voice.interfaces import ChatMessage, LlmDelta

log = logging.getLogger(__name__)

_DONE = object()


class LlamaLlm:
    def __init__(self, llama: Any, *, max_tokens: int = 160, temperature: float = 0.2) -> None:
        """`llama` is a llama_cpp.Llama (or anything with its create_chat_completion)."""
        self._llama = llama
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")

    @classmethod
    def load(cls, model_path: Path, *, n_ctx: int = 2048, n_threads: int = 2,
             state_cache_bytes: int = 256 << 20, **kwargs: Any) -> LlamaLlm:
        """`state_cache_bytes`: RAM for saved KV states, so calls that take turns on the one
        context each resume from their own history instead of re-reading the prompt."""
        if not model_path.is_file():
            raise FileNotFoundError(f"LLM model file missing: {model_path}")
        from llama_cpp import Llama  # loads the native library: paid at load time only
        from llama_cpp.llama_cache import LlamaRAMCache

        llama = Llama(str(model_path), n_ctx=n_ctx, n_threads=n_threads,
                      n_threads_batch=n_threads, verbose=False)
        if state_cache_bytes > 0:
            llama.set_cache(LlamaRAMCache(capacity_bytes=state_cache_bytes))
        return cls(llama, **kwargs)

    async def stream(self, messages: Sequence[ChatMessage],
                     tools_schema: dict[str, Any] | None = None) -> AsyncIterator[LlmDelta]:
        """Plain text without tools; with tools, the JSON reply format (see llm_reply):
        a validated ToolCall delta (if any) first, then the speech as it is generated."""
        tools = normalize_tools(tools_schema)
        prompt = self._messages(messages, tools)
        grammar = self._grammar(tools) if tools else None
        parser = ReplyStreamParser({t.name for t in tools}) if tools else None
        # aclosing: stop the worker the moment our consumer goes away, not at GC time.
        async with contextlib.aclosing(self._generate(prompt, grammar, self.max_tokens)) as gen:
            async for piece in gen:
                if parser is None:
                    yield LlmDelta(text=piece)
                    continue
                said, calls = parser.feed(piece)
                for call in calls:
                    yield LlmDelta(tool_call=call)
                if said:
                    yield LlmDelta(text=said)
        if parser is not None and (parser.tool_error or not parser.complete):
            log.warning("LLM reply was not complete valid JSON",
                        extra={"tool_error": parser.tool_error, "complete": parser.complete})

    async def prefill(self, messages: Sequence[ChatMessage],
                      tools_schema: dict[str, Any] | None = None) -> None:
        """Evaluate a prompt (e.g. just the system message) so the next reply that starts
        with it only pays for the new tokens. Useful while the phone is ringing."""
        prompt = self._messages(messages, normalize_tools(tools_schema))
        async with contextlib.aclosing(self._generate(prompt, None, 1)) as gen:
            async for _ in gen:
                pass

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

    def _grammar(self, tools: list[ToolSpec]) -> Any:
        schema = json.dumps(reply_schema(tools), sort_keys=False)
        grammar = self._grammars.get(schema)
        if grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            grammar = LlamaGrammar.from_json_schema(schema, verbose=False)
            if len(self._grammars) > 16:  # tool sets are per campaign: a handful at most
                self._grammars.clear()
            self._grammars[schema] = grammar
        return grammar

    async def _generate(self, prompt: list[dict[str, str]], grammar: Any,
                        max_tokens: int) -> AsyncGenerator[str, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def work() -> None:
            try:
                with self._lock:
                    if stop.is_set():
                        return
                    chunks = self._llama.create_chat_completion(
                        prompt, grammar=grammar, stream=True, max_tokens=max_tokens,
                        temperature=self.temperature)
                    try:
                        for chunk in chunks:
                            if stop.is_set():
                                break
                            text = chunk["choices"][0]["delta"].get("content")
                            if text:
                                put(text)
                    finally:
                        chunks.close()
            except BaseException as exc:  # delivered to the consumer, not lost in a thread
                put(exc)
            finally:
                put(_DONE)

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
            await future
        finally:
            stop.set()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
