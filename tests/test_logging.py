"""JSON logs: one JSON object per line, numbers masked in text, secrets and speech hidden."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from televox_pbx.logs import JsonFormatter, mask_phone, setup_logging

NUMBER = "+15550198000"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("televox.test_logging")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_output_is_one_json_object_per_line(
        capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info("dialer started", extra={"campaign": "dental", "calls": 3})
    logger.warning("second line\nwith a newline")
    first, second = records(stream)
    assert first["msg"] == "dialer started"
    assert first["level"] == "info"
    assert first["logger"] == "televox.test_logging"
    assert first["campaign"] == "dental" and first["calls"] == 3
    assert first["ts"].endswith("+00:00")
    assert second["msg"] == "second line\nwith a newline" and second["level"] == "warning"


@pytest.mark.parametrize("text", [
    f"calling {NUMBER} now", "calling 555-019-8000 now", "calling 555.019.8000 now",
    "calling +1 (555) 019 8000 now", "channel PJSIP/15550198000@televox-trunk"])
def test_phone_numbers_in_message_text_are_masked(
        capture: tuple[logging.Logger, io.StringIO], text: str) -> None:
    logger, stream = capture
    logger.info(text)
    [rec] = records(stream)
    digits = "".join(ch for ch in rec["msg"] if ch.isdigit())
    assert "0198000" not in digits and "***" in rec["msg"]


def test_numbers_from_format_args_are_masked(
        capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info("calling %s", NUMBER)
    assert NUMBER not in stream.getvalue()
    assert records(stream)[0]["msg"] == "calling +1555***00"


def test_short_numbers_are_left_alone(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info("retry 3 of 5 after 120 s, cause 16, port 9092")
    assert records(stream)[0]["msg"] == "retry 3 of 5 after 120 s, cause 16, port 9092"


def test_uuid_is_not_mangled() -> None:
    call_id = "b989e6ee-b220-458c-9d9e-6157f6db44c1"
    assert mask_phone(f"call {call_id}") == f"call {call_id}"


def test_phone_fields_are_masked(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info("originate", extra={"phone": NUMBER, "e164": int(NUMBER[1:]),
                                    "callerid": "15550198000"})
    rec = records(stream)[0]
    assert rec["phone"] == "+1555***00"
    assert rec["e164"] == "1555***00"
    assert rec["callerid"] == "1555***00"
    assert "0198000" not in stream.getvalue()


@pytest.mark.parametrize("key", ["secret", "password", "token", "ami_secret", "api_token",
                                 "Authorization", "Secret"])
def test_secret_fields_are_hidden(capture: tuple[logging.Logger, io.StringIO],
                                  key: str) -> None:
    logger, stream = capture
    logger.info("login", extra={key: "hunter2-s3cret"})
    assert "hunter2" not in stream.getvalue()
    assert records(stream)[0][key] == "***"


@pytest.mark.parametrize("key", ["transcript", "text", "utterance"])
def test_transcript_fields_are_hidden(capture: tuple[logging.Logger, io.StringIO],
                                      key: str) -> None:
    logger, stream = capture
    speech = "my card number is 4111 1111 1111 1111 and I live at 12 Main Street"
    logger.info("turn", extra={key: speech})
    assert "Main Street" not in stream.getvalue()
    assert records(stream)[0][key] == f"<{len(speech)} chars>"


def test_nested_fields_are_masked(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.info("ami event", extra={"fields": {"CallerIDNum": "15550198000",
                                               "Secret": "hunter2",
                                               "Channel": ["PJSIP/15550198000@trunk"]}})
    out = stream.getvalue()
    assert "hunter2" not in out and "0198000" not in out
    assert records(stream)[0]["fields"]["Secret"] == "***"


def test_exception_text_is_masked(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    try:
        raise ValueError(f"cannot dial {NUMBER}")
    except ValueError:
        logger.exception("originate failed")
    rec = records(stream)[0]
    assert "ValueError" in rec["exc"] and NUMBER not in stream.getvalue()


def test_setup_logging_installs_json_on_root() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        setup_logging("warning", stream)
        logging.getLogger("x").info("hidden")
        logging.getLogger("x").warning("shown %s", NUMBER)
        [rec] = records(stream)
        assert rec["msg"] == "shown +1555***00" and rec["level"] == "warning"
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_call_ids_are_not_masked_as_phone_numbers() -> None:
    from televox_pbx.logs import mask_phone

    text = "call 12345678-1234-1234-1234-123456789012 dialled +15550198000"
    out = mask_phone(text)
    assert "12345678-1234-1234-1234-123456789012" in out
    assert "+15550198000" not in out
