"""Route tables: each api_* module lists its routes once, with what the OpenAPI document
needs (summary, parameters, body, responses). server.py registers them; openapi.py
describes them. Also the request helpers every handler uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel

from televox_pbx.web.errors import ApiError, Handler

M = TypeVar("M", bound=BaseModel)
PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query", "header"] = "query"
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # under PREFIX, aiohttp syntax: /campaigns/{name}
    handler: Handler
    summary: str
    tag: str
    auth: bool = True
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None  # a JSON body, validated by this model
    body_required: bool = True
    body_types: tuple[str, ...] = ()  # other body media types (text/csv)
    ok: int = 200
    ok_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    ok_type: str = "application/json"
    errors: tuple[int, ...] = ()  # documented error statuses beyond the standard ones

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


def path_int(name: str, description: str = "") -> Param:
    return Param(name, "path", {"type": "integer", "minimum": 1}, description, True)


def path_str(name: str, description: str = "") -> Param:
    return Param(name, "path", {"type": "string", "minLength": 1}, description, True)


def query_int(name: str, default: int, lo: int, hi: int, description: str = "") -> Param:
    return Param(name, "query", {"type": "integer", "minimum": lo, "maximum": hi,
                                 "default": default}, description)


def query_str(name: str, description: str = "", enum: tuple[str, ...] | None = None) -> Param:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = list(enum)
    return Param(name, "query", schema, description)


PAGING = (query_int("limit", 50, 1, 1000, "page size"),
          query_int("offset", 0, 0, 10_000_000, "rows to skip"))


# -- request helpers -------------------------------------------------------------------


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_parameter", f"{name}: not an integer") from None
    if not lo <= value <= hi:
        raise ApiError(422, "invalid_parameter", f"{name}: must be {lo}..{hi}")
    return value


def str_param(request: web.Request, name: str, enum: tuple[str, ...] | None = None,
              max_len: int = 200) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_len:
        raise ApiError(422, "invalid_parameter", f"{name}: longer than {max_len} characters")
    if enum is not None and value not in enum:
        raise ApiError(422, "invalid_parameter", f"{name}: one of {', '.join(enum)}")
    return value


def bool_param(request: web.Request, name: str) -> bool:
    value = (request.query.get(name) or "").lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ApiError(422, "invalid_parameter", f"{name}: true or false")


def paging(request: web.Request) -> tuple[int, int]:
    return (int_param(request, "limit", 50, 1, 1000),
            int_param(request, "offset", 0, 0, 10_000_000))


def match_int(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise ApiError(404, "not_found", f"{name}: not an id") from None
    if value < 1:
        raise ApiError(404, "not_found", f"{name}: not an id")
    return value


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 past `limit` bytes, chunked or not: never more
    than limit + one chunk is held."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: web.Request, limit: int) -> bytes:
    """The CSV: the raw body, or the first file of a multipart form."""
    if request.content_type != "multipart/form-data":
        return await read_body(request, limit)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
    try:
        return await _first_file(request, limit)
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # A malformed form is the client's mistake (aiohttp's parser asserts on some).
        raise ApiError(400, "invalid_multipart", str(exc)[:200] or "malformed form") from None


async def _first_file(request: web.Request, limit: int) -> bytes:
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.filename is None:
            continue
        data = bytearray()
        while chunk := await part.read_chunk(65536):
            data += chunk
            if len(data) > limit:
                raise ApiError(413, "body_too_large", f"the file is over {limit} bytes")
        return bytes(data)
    raise ApiError(422, "no_file", "the form has no file part")


async def json_body(request: web.Request, model: type[M], limit: int) -> M:
    raw = await read_body(request, limit)
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    return model.model_validate(data)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps(data, ensure_ascii=False, default=str))
