"""Auth and errors: every route but /status (and the signed intake) needs the bearer
token (the router is enumerated, so a route added later is covered too); errors are JSON
with a stable id; bodies over the limits get 413."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from api_support import TOKEN, api_settings, running_api
from app_support import campaign_data, write_campaign
from pydantic import SecretStr

from televox_pbx.web.auth import token_owner

PUBLIC = {("GET", "/api/v1/status")}
# Signed with the campaign's own secret instead of a token: unsigned is 401 all the same.
SIGNED = {("POST", "/api/v1/intake/{name}")}


def _concrete(path: str) -> str:
    """A request path for a route pattern: numbers for ids, words for names."""
    return re.sub(r"\{(\w+)\}", lambda m: "7" if m.group(1) == "id" else "x", path)


async def test_every_route_needs_the_token(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        app = api.app.web.application
        every = [(r.method, r.resource.canonical) for r in app.router.routes()
                 if r.resource is not None]
        routes = [(m, p) for m, p in every if p.startswith("/api/")]
        assert len(routes) >= 30  # the whole API, not an empty router
        checked = 0
        for method, pattern in routes:
            path = _concrete(pattern)
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": f"Basic {TOKEN}"}):
                async with api.anon.request(method, path, headers=headers,
                                            data=b"{}") as resp:
                    if (method, pattern) in PUBLIC:
                        assert resp.status == 200, (method, path)
                        continue
                    body = await resp.json()
                    assert resp.status == 401, (method, path, resp.status)
                    if (method, pattern) in SIGNED:
                        assert body["error"] == "unsigned"
                        checked += 1
                        continue
                    assert body["error"] == "unauthorized" and body["status"] == 401
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                    checked += 1
        assert checked == 3 * (len(routes) - len(PUBLIC))
        # Unknown paths do not tell an anonymous caller what exists.
        async with api.anon.get("/api/v1/nothing-here") as resp:
            assert resp.status == 401
        # Every other route is the dashboard's: pages send a visitor to the login, other
        # methods get 401, even with a bearer token (the dashboard wants its own login).
        dashboard = [(m, p) for m, p in every if not p.startswith("/api/")]
        assert len(dashboard) >= 12
        for method, pattern in dashboard:
            if pattern == "/ui/login":
                continue
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
                async with api.anon.request(method, _concrete(pattern) + "/x" * (
                        pattern == "/ui/static"), headers=headers, data=b"{}",
                        allow_redirects=False) as resp:
                    if method in ("GET", "HEAD"):
                        assert resp.status == 303, (method, pattern, resp.status)
                        assert resp.headers["Location"].startswith("/ui/login?next=")
                    else:
                        assert resp.status == 401, (method, pattern, resp.status)


async def test_status_is_minimal_without_a_token_and_full_with_one(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        async with api.anon.get("/api/v1/status") as resp:
            body = await resp.json()
            assert resp.status == 200
        assert body["ami"] == "logged_in" and body["status"] == "ok"
        assert body["calls_in_flight"] == 0 and body["queue_depth"] == 0
        assert body["version"]
        assert set(body) == {"status", "version", "ami", "ami_mode", "models_loaded",
                             "calls_in_flight", "queue_depth", "node", "cluster"}
        # One box (SQLite): the cluster is this box alone, with its voice capacity.
        assert body["cluster"]["nodes_alive"] == 1 and body["cluster"]["nodes_dead"] == 0
        assert body["node"]["capacity"] == body["cluster"]["capacity"] is not None
        # A wrong token gets the minimal answer, not a 401; the right one gets the detail.
        async with api.anon.get("/api/v1/status",
                                headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 200 and "detail" not in await resp.json()
        full = await api.json("GET", "/status")
        assert full["detail"]["health"]["ami_state"] == "logged_in"
        assert {"campaigns", "call_attempts", "webhook_deliveries"} <= set(full["detail"])


async def test_errors_are_json_with_a_stable_id(tmp_path: Path) -> None:
    async with running_api(api_settings(tmp_path), dial=False) as api:
        body = await api.json("GET", "/nothing-here", 404)
        assert body == {"status": 404, "error": "not_found", "detail": "Not Found"}
        body = await api.json("GET", "/campaigns/nope", 404)
        assert body["error"] == "not_found"
        body = await api.json("POST", "/dnc", 400, data=b"{not json",
                              headers={"Content-Type": "application/json"})
        assert body["error"] == "invalid_json"
        body = await api.json("POST", "/dnc", 422, json={"numbers": [], "extra": 1})
        assert body["error"] == "validation_error"
        assert {d["field"] for d in body["detail"]} == {"numbers", "extra"}
        body = await api.json("GET", "/dnc", 422, params={"limit": "many"})
        assert body["error"] == "invalid_parameter"
        body = await api.json("DELETE", "/campaigns", 405)
        assert body["error"] == "method_not_allowed"


async def test_oversized_bodies_get_413(tmp_path: Path) -> None:
    settings = api_settings(tmp_path, max_body_bytes=2048, max_upload_bytes=4096)
    write_campaign(settings, campaign_data("x"))
    async with running_api(settings, dial=False) as api:
        big = {"numbers": ["+12125550100"] * 400}  # ~6 kB of JSON
        body = await api.json("POST", "/dnc", 413, json=big)
        assert body["error"] == "body_too_large"

        async def chunks() -> aiohttp.streams.AsyncStreamIterator[bytes]:  # type: ignore[misc]
            for _ in range(10):
                yield b"x" * 1000  # no Content-Length: counted as it arrives

        body = await api.json("POST", "/campaigns/x/contacts/csv", 413, data=chunks())
        assert body["error"] == "body_too_large"
        csv = b"phone\n" + b"+12125550100\n" * 400
        body = await api.json("POST", "/dnc/import", 413, data=csv,
                              headers={"Content-Type": "text/csv"})
        assert body["error"] == "body_too_large"
        # Under the limit, the same endpoint works.
        body = await api.json("POST", "/dnc/import", 201, data=b"phone\n+12125550100\n",
                              headers={"Content-Type": "text/csv"})
        assert body["counts"]["added"] == 1


def test_token_owner_names_the_matching_token() -> None:
    tokens = {"ops": SecretStr("aaaa"), "crm": SecretStr("bbbb")}
    assert token_owner("bbbb", tokens) == "crm"
    assert token_owner("aaaa", tokens) == "ops"
    assert token_owner("aaa", tokens) is None
    assert token_owner("", tokens) is None
    assert token_owner("aaaa", {}) is None
