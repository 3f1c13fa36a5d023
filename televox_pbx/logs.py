"""Structured JSON logging to stdout, with phone numbers masked in message text.

Phone numbers and transcripts belong in structured fields (extra=...), which stay
redactable; anything number-like that slips into the message text is masked here.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# 7+ digits, optionally with +, spaces, dots, dashes or parentheses between them.
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d\s().-]{5,}\d(?!\w)")
# Fields that may hold a number or speech; masked in the JSON unless explicitly allowed.
SENSITIVE_FIELDS = frozenset({"phone", "e164", "number", "callerid", "transcript", "text",
                              "secret", "password", "token"})
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName"}


def mask_phone(value: str) -> str:
    """'+15550198000' -> '+1555***8000': enough to correlate, not enough to dial."""
    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) < 7:
            return m.group(0)
        return ("+" if m.group(0).startswith("+") else "") + digits[:4] + "***" + digits[-2:]
    return _PHONE.sub(repl, value)


def _mask_field(key: str, value: Any) -> Any:
    if key.lower() in {"secret", "password", "token"}:
        return "***"
    if key.lower() in {"transcript", "text"} and isinstance(value, str):
        return f"<{len(value)} chars>"
    if isinstance(value, str):
        return mask_phone(value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_phone(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = _mask_field(key, value)
        if record.exc_info:
            out["exc"] = mask_phone(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
