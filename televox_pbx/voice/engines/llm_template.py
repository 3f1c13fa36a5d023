"""Text-level helpers of the llama.cpp engine: the model's chat template, the header of the
next turn, and the tokens that can start the reply's tool value (see llm_llama)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from televox_pbx.voice.engines.llm_reply import ToolSpec, reply_schema

NULL = " null"  # one token in Qwen2.5, the very text the tool grammar yields for it


def _tool_schema(tools: list[ToolSpec]) -> dict[str, Any]:
    """Just the "tool" value of the reply schema."""
    schema: dict[str, Any] = reply_schema(tools)["properties"]["tool"]
    return schema


def _tool_starts(llama: Any) -> tuple[int, npt.NDArray[np.intp]] | None:
    """The ` null` token, and every other token the tool grammar could start its value
    with: those beginning ` {` (a tool call; some, like ` {}`, the grammar would refuse),
    the pieces of ` null` (` `, ` n`, ` nu`) and ` null` with more after it (` null `).
    Counting a token too many only sends a turn down the slower grammar path, which is
    always right. None when ` null` is not one token. Scans the vocabulary: ~0.4 s, once,
    at load time."""
    null = llama.tokenize(NULL.encode("utf-8"), add_bos=False, special=False)
    if len(null) != 1 or llama.detokenize(null) != NULL.encode("utf-8"):
        return None
    whole = NULL.encode("utf-8")
    rivals = [t for t in range(int(llama.n_vocab())) if t != null[0]
              and _rival(bytes(llama.detokenize([t])), whole)]
    return null[0], np.asarray(rivals, dtype=np.intp)


def _rival(piece: bytes, null: bytes) -> bool:
    return bool(piece) and (piece.startswith(b" {") or null.startswith(piece)
                            or piece.startswith(null))


def _upto_next_turn(template: Callable[[list[dict[str, str]]], str],
                    prompt: list[dict[str, str]]) -> str:
    """`prompt` as text followed by the header of the turn that comes next, the callee's
    (tool results are user turns too): `<|im_start|>user\n` for Qwen. Rendered as is, the
    text would end in a reply header the next prompt does not have; this way the header's
    ~3 tokens are evaluated in the background, not after the callee has spoken."""
    marker = "\u2063\u2063"  # invisible separators: in no real prompt
    text = template([*prompt, {"role": "user", "content": marker}])
    end = text.rfind(marker)
    return text[:end] if end >= 0 else template(prompt)


def _chat_template(llama: Any) -> Callable[[list[dict[str, str]]], str] | None:
    """The model's own chat template as text (what create_chat_completion would build),
    ending with the assistant's turn; None when `llama` carries none."""
    metadata = getattr(llama, "metadata", None)
    if not isinstance(metadata, dict) or "tokenizer.chat_template" not in metadata:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token(tid: int) -> str:
        return str(llama._model.token_get_text(tid)) if tid != -1 else ""
    formatter: Any = Jinja2ChatFormatter(template=metadata["tokenizer.chat_template"],
                                    eos_token=token(llama.token_eos()),
                                    bos_token=token(llama.token_bos()))

    def render(messages: list[dict[str, str]]) -> str:
        return str(formatter(messages=messages).prompt)
    return render
