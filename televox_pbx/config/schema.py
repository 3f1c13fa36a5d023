"""JSON Schema for the YAML files, generated from the pydantic models (never hand-edited).

config/campaign.schema.json is this output; a test keeps the shipped copy in step.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from televox_pbx.config.agent import AgentFile
from televox_pbx.config.campaign import Campaign
from televox_pbx.config.settings import Settings

SCHEMAS: dict[str, type[BaseModel]] = {"agent": AgentFile, "campaign": Campaign,
                                       "settings": Settings}
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: str) -> dict[str, Any]:
    """The schema for 'campaign' or 'settings'; KeyError for anything else."""
    model = SCHEMAS[kind]
    return {"$schema": _DRAFT, **model.model_json_schema(mode="validation")}


def render(kind: str) -> str:
    """Stable text: sorted keys would reorder fields, so keep model order; end with newline."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"
