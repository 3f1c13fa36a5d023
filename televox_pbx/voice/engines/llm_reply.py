"""The LLM's reply format, and a streaming parser for it (pure; no model needed).

With tools, the model must answer one JSON object, enforced by a grammar built from
a JSON schema:  {"tool": null | {"name": "<tool>", "arguments": {...}}, "say": "<speech>"}
"tool" comes first: deciding the action before speaking made the 1.5B model call
opt_out reliably (0/3 with "say" first, 3/3 with "tool" first), and the caller learns
about the tool before any speech. The "say" string is streamed as it is generated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from televox_pbx.voice.interfaces import ToolCall

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


def normalize_tools(tools_schema: Mapping[str, Any] | None) -> list[ToolSpec]:
    """Accept {"tools": [...]} with OpenAI-style {"type": "function", "function": {...}}
    entries or bare {"name", "description", "parameters"} entries."""
    if not tools_schema:
        return []
    specs: list[ToolSpec] = []
    for raw in tools_schema.get("tools", []):
        fn = raw.get("function", raw)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        specs.append(ToolSpec(str(fn["name"]), str(fn.get("description", "")), dict(params)))
    return specs


def reply_schema(tools: list[ToolSpec]) -> dict[str, Any]:
    options: list[dict[str, Any]] = [{"type": "null"}]
    for tool in tools:
        params = {"type": "object", "properties": {}, "additionalProperties": False,
                  **tool.parameters}
        options.append({"type": "object",
                        "properties": {"name": {"const": tool.name}, "arguments": params},
                        "required": ["name", "arguments"]})
    return {"type": "object",
            "properties": {"tool": {"anyOf": options}, "say": {"type": "string"}},
            "required": ["tool", "say"]}


def _signature(tool: ToolSpec) -> str:
    props: dict[str, Any] = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    args = []
    for key, spec in props.items():
        kind = "|".join(map(str, spec["enum"])) if "enum" in spec else spec.get("type", "any")
        note = f" ({spec['description']})" if spec.get("description") else ""
        args.append(f"{key}{'' if key in required else '?'}: {kind}{note}")
    return f"- {tool.name}({', '.join(args)}): {tool.description}"


def format_instructions(tools: list[ToolSpec]) -> str:
    """Stable text (same tools -> same bytes) placed first in the system prompt, so the
    cached prompt prefix is shared by every call of a campaign."""
    lines = [
        'Answer every turn with one JSON object: {"tool": null, "say": "<words to speak>"}.',
        'When an action is needed, set "tool" to {"name": "<tool name>", "arguments": {...}} '
        'instead of null, and still put what you say in "say". Most turns need no tool.',
        "Tools:",
        *(_signature(t) for t in tools),
    ]
    return "\n".join(lines)


def wrap_assistant(content: str) -> str:
    """Earlier assistant turns are replayed in the same JSON shape the model must produce."""
    stripped = content.strip()
    if stripped.startswith("{"):
        try:
            if isinstance(json.loads(stripped), dict):
                return stripped
        except ValueError:
            pass
    return json.dumps({"tool": None, "say": content})


class ReplyStreamParser:
    """Feed model text as it streams; get speech text deltas and, once the "tool" value is
    complete, the validated tool call (or None). Tolerates any chunking of the input."""

    def __init__(self, tool_names: set[str]) -> None:
        self._tool_names = tool_names
        self._buf: list[str] = []
        self._pos = 0
        self._depth = 0
        self._in_str = False
        self._esc = False
        self._unicode: str | None = None
        self._pending_high: int | None = None
        self._key: str | None = None
        self._reading_key = False
        self._key_chars: list[str] = []
        self._expect_value = False
        self._value_start: int | None = None
        self._say_active = False
        self.tool_seen = False
        self.tool: ToolCall | None = None
        self.tool_error: str | None = None
        self.complete = False
        self.say_done = False  # the "say" string has been closed

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        """Returns (new speech text, tool calls completed by this text)."""
        said: list[str] = []
        tools: list[ToolCall] = []
        for ch in text:
            self._buf.append(ch)
            self._step(ch, said, tools)
            self._pos += 1
        return "".join(said), tools

    def _step(self, ch: str, said: list[str], tools: list[ToolCall]) -> None:
        if self._in_str:
            self._string_char(ch, said)
            return
        if self.complete or ch in " \t\r\n":
            return
        depth1 = self._depth == 1
        if depth1 and self._expect_value and self._value_start is None:
            self._value_start = self._pos
            if ch == '"' and self._key == "say":
                self._in_str = self._say_active = True
                return
        if ch == '"':
            self._in_str = True
            if depth1 and not self._expect_value:
                self._reading_key, self._key_chars = True, []
        elif ch in "{[":
            self._depth += 1
        elif ch in "}]":
            self._depth -= 1
            if self._depth == 1 and self._value_start is not None:
                self._end_value(self._pos + 1, tools)
            elif self._depth == 0:
                if self._value_start is not None:
                    self._end_value(self._pos, tools)
                self.complete = True
        elif depth1 and ch == ":":
            self._expect_value = True
        elif depth1 and ch == ",":
            if self._value_start is not None:
                self._end_value(self._pos, tools)
            self._expect_value = False

    def _string_char(self, ch: str, said: list[str]) -> None:
        if self._say_active:
            self._say_char(ch, said)
            return
        if self._esc:
            self._esc = False
        elif ch == "\\":
            self._esc = True
        elif ch == '"':
            self._in_str = False
            if self._reading_key:
                self._reading_key = False
                self._key = "".join(self._key_chars)
        elif self._reading_key:
            self._key_chars.append(ch)

    def _say_char(self, ch: str, said: list[str]) -> None:
        if self._unicode is not None:
            self._unicode += ch
            if len(self._unicode) == 4:
                self._emit_code(int(self._unicode, 16), said)
                self._unicode = None
        elif self._esc:
            self._esc = False
            if ch == "u":
                self._unicode = ""
            else:
                said.append(_ESCAPES.get(ch, ch))
        elif ch == "\\":
            self._esc = True
        elif ch == '"':
            self._in_str = self._say_active = False
            self._end_value_marker()
        else:
            said.append(ch)

    def _emit_code(self, code: int, said: list[str]) -> None:
        if 0xD800 <= code < 0xDC00:
            self._pending_high = code
            return
        if 0xDC00 <= code < 0xE000 and self._pending_high is not None:
            code = 0x10000 + ((self._pending_high - 0xD800) << 10) + (code - 0xDC00)
        self._pending_high = None
        said.append(chr(code))

    def _end_value_marker(self) -> None:
        # The "say" string is done; its value needs no further parsing.
        self.say_done = True
        self._value_start = None
        self._expect_value = False

    def _end_value(self, end: int, tools: list[ToolCall]) -> None:
        start, self._value_start = self._value_start, None
        self._expect_value = False
        if self._key != "tool" or start is None:
            return
        self.tool_seen = True
        raw = "".join(self._buf[start:end]).strip()
        try:
            value = json.loads(raw)
        except ValueError:
            self.tool_error = f"unparsable tool value {raw[:80]!r}"
            return
        call = self._validate(value)
        if call is not None:
            self.tool = call
            tools.append(call)

    def _validate(self, value: Any) -> ToolCall | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            self.tool_error = "tool is not an object with a name"
            return None
        args = value.get("arguments", {})
        if value["name"] not in self._tool_names:
            self.tool_error = f"unknown tool {value['name']!r}"
            return None
        if not isinstance(args, dict):
            self.tool_error = "tool arguments are not an object"
            return None
        return ToolCall(value["name"], args)
