"""An IVR flow (campaign `kind: ivr`): steps that play prompts, gather a key, branch on it,
record an answer and hang up. No LLM in the loop. Validated with the campaign, so every
error carries file:line (`televox check`).

    ivr:
      opt_out_key: "9"              # at any time: the number goes on the DNC list
      steps:
        - id: intro
          play: [{say: "Hello, this is Acme's automated AI survey. Press 9 to stop calls."}]
        - id: q1
          play: [{file: q1.wav}]
          gather: {question: satisfied, valid: "12", timeout_s: 5, retries: 2}
          branch: {"1": thanks, "2": why}
        - id: why
          play: [{say: "After the tone, tell us what we could do better."}]
          record: {question: comment, max_s: 20}
        - id: thanks
          play: [{say: "Thank you. Goodbye."}]
          hangup: true

Steps run in order; `branch` jumps on the digit this step gathered, `next` jumps always;
a gather with no valid key after its retries goes on to the next step in order.
WAV files are read from the media folder (config/media next to config/campaigns).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from televox_pbx.config.strict import Strict as _Strict

_KEYS = "0123456789*#"
_ID = r"^[A-Za-z][A-Za-z0-9_-]*$"




class Prompt(_Strict):
    file: str | None = Field(default=None, description="A WAV in the media folder.")
    say: str | None = Field(default=None, min_length=1,
                            description="Text spoken by the TTS voice (rendered once, cached).")

    @model_validator(mode="after")
    def _one(self) -> Prompt:
        if (self.file is None) == (self.say is None):
            raise ValueError("a prompt is either file: or say:, not both or neither")
        if self.file is not None and (self.file.startswith("/") or ".." in self.file
                                      or not self.file.lower().endswith(".wav")):
            raise ValueError("file: a .wav path inside the media folder")
        return self


def _keys(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class Gather(_Strict):
    question: str = Field(pattern=_ID, description="The answer's column in the export.")
    valid: str = Field(min_length=1, description="Accepted keys, e.g. '12' or '12345'.")
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5, description="Prompt again this often.")

    @field_validator("valid", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return _keys(v)

    @field_validator("valid")
    @classmethod
    def _valid(cls, v: str) -> str:
        bad = sorted(set(v) - set(_KEYS))
        if bad:
            raise ValueError(f"not keypad keys: {''.join(bad)}")
        return v


class Record(_Strict):
    question: str = Field(pattern=_ID)
    max_s: float = Field(default=20.0, gt=0, le=120)


class Step(_Strict):
    id: str = Field(pattern=_ID)
    play: list[Prompt] = Field(default_factory=list)
    gather: Gather | None = None
    branch: dict[str, str] = Field(default_factory=dict,
                                   description="Gathered key -> the id of the next step.")
    record: Record | None = None
    next: str | None = None
    hangup: bool = False

    @field_validator("branch", mode="before")
    @classmethod
    def _branch_keys(cls, v: Any) -> Any:
        return {_keys(k): t for k, t in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if self.branch and self.gather is None:
            raise ValueError("branch: needs a gather: in the same step")
        if self.gather is not None:
            extra = sorted(set(self.branch) - set(self.gather.valid))
            if extra:
                raise ValueError(f"branch on keys the gather does not accept: {extra}")
        if self.gather is not None and self.record is not None:
            raise ValueError("a step either gathers a key or records, not both")
        if self.hangup and (self.next or self.branch):
            raise ValueError("a step that hangs up has no next or branch")
        if not (self.play or self.gather or self.record or self.hangup):
            raise ValueError("an empty step: give play, gather, record or hangup")
        return self


class IvrConfig(_Strict):
    opt_out_key: str | None = Field(
        default=None, description="A key that, at any time, puts the number on the DNC "
                                  "list (say so in a prompt).")
    max_prompt_s: float = Field(default=120.0, gt=0, le=600,
                                description="Longest accepted prompt, checked at start.")
    steps: list[Step] = Field(min_length=1)

    @field_validator("opt_out_key", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return _keys(v)

    @field_validator("opt_out_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v not in _KEYS):
            raise ValueError(f"{v!r} is not one keypad key")
        return v

    @model_validator(mode="after")
    def _flow(self) -> IvrConfig:
        ids = [s.id for s in self.steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"step ids must be unique: {dupes}")
        questions = [q for s in self.steps for q in (
            s.gather.question if s.gather else None, s.record.question if s.record else None)
            if q is not None]
        if len(set(questions)) != len(questions):
            raise ValueError("each question id may be asked by one step only")
        for s in self.steps:
            for target in [*s.branch.values(), *([s.next] if s.next else [])]:
                if target not in ids:
                    raise ValueError(f"step {s.id!r} goes to {target!r}, which is no step")
            if s.gather is not None and self.opt_out_key and self.opt_out_key in s.gather.valid:
                raise ValueError(f"step {s.id!r}: the opt-out key {self.opt_out_key} is "
                                 "also an answer")
        return self

    def questions(self) -> list[str]:
        """Question ids in flow order: the export's columns."""
        return [q for s in self.steps for q in (
            s.gather.question if s.gather else None, s.record.question if s.record else None)
            if q is not None]

    def first_prompt(self) -> Prompt | None:
        return next((p for s in self.steps for p in s.play), None)

    def uses_tts(self) -> bool:
        return any(p.say is not None for s in self.steps for p in s.play)
