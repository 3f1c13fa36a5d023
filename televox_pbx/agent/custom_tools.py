"""An agent's custom tools: HTTP requests to the business's own systems during a call.

Each request is signed (X-Televox-Signature: sha256=HMAC-SHA256(secret, body)), bounded by
the tool's timeout on the call's clock, and its response read only up to the tool's size
limit. Whatever happens, the outcome is a ToolResult: what the LLM is shown (a short JSON
text) and the record kept with the call (arguments, status, latency, size: never the
response's content, which stays out of log text too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp

from televox_pbx.clock import Clock, wait_for
from televox_pbx.config.agent import HttpTool

log = logging.getLogger(__name__)

Status = Literal["ok", "timeout", "http_error", "bad_response", "too_large", "error",
                 "bad_arguments"]
SHOWN_CHARS = 600  # of a result, in the prompt: each token costs ~18 ms of prompt work


@dataclass(frozen=True, slots=True)
class CustomTool:
    """The model asked for one of the agent's custom tools."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    tool: str
    arguments: str  # JSON, as the model gave them
    status: Status
    http_status: int | None
    latency_ms: int
    response_bytes: int


@dataclass(frozen=True, slots=True)
class ToolResult:
    ok: bool
    content: str  # what the LLM is shown
    record: ToolCallRecord


class ToolCallLog(Protocol):
    async def record(self, call_id: str, agent: str, record: ToolCallRecord) -> None:
        """Keep one tool call with the call."""


def custom_tools_schema(tools: Sequence[HttpTool]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tools]


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class HttpToolRunner:
    def __init__(self, tools: Sequence[HttpTool], clock: Clock) -> None:
        self.tools = {t.name: t for t in tools}
        self.clock = clock

    def tool(self, name: str) -> HttpTool | None:
        return self.tools.get(name)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        tool = self.tools[name]
        args_json = json.dumps(arguments, sort_keys=True)
        started = self.clock.monotonic()

        def done(status: Status, shown: dict[str, Any], http: int | None = None,
                 size: int = 0) -> ToolResult:
            ms = round((self.clock.monotonic() - started) * 1000)
            record = ToolCallRecord(name, args_json, status, http, ms, size)
            if status != "ok":
                log.warning("custom tool failed", extra={"tool": name, "status": status,
                                                         "http_status": http})
            return ToolResult(status == "ok", json.dumps({name: shown})[:SHOWN_CHARS], record)

        missing = [k for k in tool.parameters.get("required", []) if k not in arguments]
        if missing:
            return done("bad_arguments", {"error": f"missing {', '.join(missing)}"})
        try:
            http, body = await wait_for(self.clock, self._request(tool, arguments),
                                        tool.timeout_s)
        except TimeoutError:
            return done("timeout", {"error": "no answer in time"})
        except _TooLarge as exc:
            return done("too_large", {"error": "answer too large"}, size=exc.size)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return done("error", {"error": type(exc).__name__})
        if http >= 400:
            return done("http_error", {"error": f"HTTP {http}"}, http, len(body))
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return done("bad_response", {"error": "unreadable answer"}, http, len(body))
        return done("ok", {"result": value}, http, len(body))

    async def _request(self, tool: HttpTool, arguments: dict[str, Any]) -> tuple[int, bytes]:
        body = json.dumps(arguments).encode("utf-8") if tool.method == "POST" else b""
        headers = {"Content-Type": "application/json", "X-Televox-Tool": tool.name}
        secret = tool.secret()
        if secret is not None:
            headers["X-Televox-Signature"] = signature(secret, body)
        params = {k: str(v) for k, v in arguments.items()} if tool.method == "GET" else None
        async with aiohttp.ClientSession() as session, session.request(
                tool.method, tool.url, data=body or None, params=params,
                headers=headers) as resp:
            limit = tool.max_response_bytes
            data = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                data += chunk
                if len(data) > limit:
                    raise _TooLarge(len(data))
            return resp.status, bytes(data)
