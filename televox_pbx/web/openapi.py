"""The OpenAPI 3.1 document, generated from the same route tables the server registers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from televox_pbx.web.routes import Route

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["status", "error"],
    "properties": {"status": {"type": "integer"},
                   "error": {"type": "string", "description": "stable error id"},
                   "detail": {"description": "what went wrong, for a person or a program"}}}
_ERROR_TEXT = {400: "Bad request (e.g. the body is not JSON)", 401: "No or a wrong token",
               404: "Not found", 409: "Conflict with the current state",
               413: "Request body too large", 415: "Unsupported media type",
               416: "Range not satisfiable", 422: "Invalid input",
               429: "Too many calls in flight", 502: "The PBX refused",
               503: "Unavailable (PBX link down, no dialer)"}


def _operation_id(route: Route) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", route.path).strip("_")
    return f"{route.method.lower()}_{slug}"


def _responses(route: Route) -> dict[str, Any]:
    codes = set(route.errors) | {400}
    if route.auth:
        codes.add(401)
    if any(p.where == "path" for p in route.params):
        codes.add(404)
    if route.body is not None or route.body_types:
        codes |= {413, 422}
    if any(p.where == "query" for p in route.params):
        codes.add(422)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    out: dict[str, Any] = {str(route.ok): {"description": "OK", "content": {
        route.ok_type: {"schema": dict(route.ok_schema)}}}}
    if route.ok_type == "audio/wav":
        out["206"] = {"description": "Part of the file (Range)", "content": {
            "audio/wav": {"schema": dict(route.ok_schema)}}}
    for code in sorted(codes):
        out[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"), "content": error}
    out["default"] = {"description": "Error", "content": error}
    return out


def _request_body(route: Route, schemas: dict[str, Any]) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        content["application/json"] = {
            "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}
    for media in route.body_types:
        if media == "application/json":  # any JSON object or list of them (intake)
            content[media] = {"schema": {"type": ["object", "array"]}}
        elif media == "multipart/form-data":
            content[media] = {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}}
        else:
            content[media] = {"schema": {"type": "string"}}
    if not content:
        return None
    return {"required": route.body_required, "content": content}


def build_document(routes: Sequence[Route], version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {"operationId": _operation_id(route), "summary": route.summary,
                              "tags": [route.tag], "responses": _responses(route)}
        params = [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                   "schema": dict(p.schema),
                   **({"description": p.description} if p.description else {}),
                   **({"explode": True, "style": "form"} if p.schema.get("type") == "array"
                      else {})}
                  for p in route.params]
        if params:
            op["parameters"] = params
        body = _request_body(route, schemas)
        if body is not None:
            op["requestBody"] = body
        if not route.auth:
            op["security"] = []
        paths.setdefault(route.full_path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Televox PBX API", "version": version,
                 "description": "Campaigns, contacts, calls, DNC and the AMI event log. "
                                "Every endpoint but /status and the signed webhook intake "
                                "(/intake/{name}) needs `Authorization: Bearer <token>`. "
                                "Errors are JSON {status, error, detail}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }
