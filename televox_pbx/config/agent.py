"""One agent, as written in config/agents/<name>.yaml: who it is, what it knows, how it
behaves, its tools and what it says when it answers a call.

A campaign names its agent (`agent: front-desk`) and keeps its own opening line and goal;
the loader resolves the name (config/loader.py). Nothing here imports campaign.py, which
imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from televox_pbx.config.strict import Strict as _Strict

BuiltinTool = Literal["set_disposition", "opt_out", "schedule_callback", "transfer",
                      "end_call"]
BUILTIN_TOOLS: tuple[BuiltinTool, ...] = ("set_disposition", "opt_out", "schedule_callback",
                                          "transfer", "end_call")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"




class Example(_Strict):
    """One few-shot exchange: what a callee says and what the agent answers."""

    callee: str = Field(min_length=1)
    agent: str = Field(min_length=1)


class HttpTool(_Strict):
    """A tool the agent may call during a call: an HTTP request to the business's system.
    Each request carries X-Televox-Signature: sha256=HMAC(secret, body)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    description: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments (an object).")
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST"] = "POST"
    timeout_s: float = Field(default=3.0, gt=0, le=30)
    max_response_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    filler: str = Field(default="One moment, let me check that.", min_length=1,
                        description="Said when the answer takes longer than filler_after_s.")
    filler_after_s: float = Field(default=0.7, gt=0)
    secret_env: str | None = None
    secret_file: Path | None = None

    @field_validator("parameters")
    @classmethod
    def _object(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type") != "object":
            raise ValueError("must be a JSON Schema with type: object")
        return v

    def secret(self) -> bytes | None:
        if self.secret_file is not None:
            value = self.secret_file.read_text(encoding="utf-8").strip()
        else:
            value = os.environ.get(self.secret_env, "") if self.secret_env else ""
        return value.encode("utf-8") if value else None


class Inbound(_Strict):
    first_message: str | None = Field(
        default=None, description="Said on answering; default: a greeting with the "
                                  "persona and business. The AI disclosure is added.")
    goal: str = Field(default="Answer the caller's questions about the business and help "
                              "them; offer a callback for anything you cannot answer.",
                      min_length=1)


class AgentFile(_Strict):
    name: str = Field(min_length=1, pattern=NAME_PATTERN,
                      description="Must equal the file name without .yaml.")
    persona_name: str = Field(min_length=1)
    business: str = Field(min_length=1)
    voice: str | None = Field(default=None,
                              description="A Piper voice of the model manifest; default: "
                                          "models.tts of the settings.")
    business_info: str = Field(default="", description="Short facts, always in the prompt.")
    knowledge: list[str] = Field(
        default_factory=list,
        description="Files or folders, relative to this file: .md, .txt, .pdf, and FAQ "
                    ".yaml (a list of question/answer pairs).")
    instructions: str = Field(default="", description="How the agent behaves.")
    examples: list[Example] = Field(default_factory=list)
    builtin_tools: list[BuiltinTool] = Field(default_factory=lambda: list(BUILTIN_TOOLS))
    tools: list[HttpTool] = Field(default_factory=list, description="Custom HTTP tools.")
    inbound: Inbound = Inbound()
    # Where the file lives (knowledge paths are relative to it); set by the loader.
    base_dir: SkipJsonSchema[Path | None] = Field(default=None, exclude=True)

    @field_validator("tools")
    @classmethod
    def _unique(cls, v: list[HttpTool]) -> list[HttpTool]:
        names = [t.name for t in v]
        for n in names:
            if names.count(n) > 1:
                raise ValueError(f"tool {n!r} is declared twice")
            if n in BUILTIN_TOOLS:
                raise ValueError(f"tool {n!r} is a built-in tool's name")
        return v

    def knowledge_paths(self) -> list[Path]:
        base = self.base_dir or Path(".")
        return [Path(os.path.normpath(base / s)) for s in self.knowledge]

    def greeting(self) -> str:
        return self.inbound.first_message or (
            f"Hi, this is {self.persona_name}, an AI assistant at {self.business}. "
            "How can I help you?")
