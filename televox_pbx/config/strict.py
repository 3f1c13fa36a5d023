"""The base of every config model: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # YAML reads `exten: 100` or `caller_id: 15550001234` as numbers; they are strings here.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
