"""API errors: JSON {status, error, detail} with a stable error id, for every failure."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own HTTP errors (no route, wrong method, body too large) get stable ids too.
_HTTP_IDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
             405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
             415: "unsupported_media_type", 416: "range_not_satisfiable",
             422: "validation_error", 429: "too_many_requests", 503: "unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def error_response(status: int, error: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = {"status": status, "error": error, "detail": detail}
    return web.Response(status=status, headers=headers, content_type="application/json",
                        text=json.dumps(body, ensure_ascii=False, default=str))


def validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]),
             "message": e["msg"].removeprefix("Value error, ")} for e in exc.errors()]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)
    except ValidationError as exc:
        return error_response(422, "validation_error", validation_detail(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() in ("allow", "content-range", "www-authenticate")}
        return error_response(exc.status, _HTTP_IDS.get(exc.status, f"http_{exc.status}"),
                               exc.reason, headers)
    except Exception:
        log.exception("API handler failed", extra={"path": request.path,
                                                   "method": request.method})
        return error_response(500, "internal_error", "the server failed; see its log")
