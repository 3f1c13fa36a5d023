"""Dashboard login: the API token or the admin password (scrypt hash), HttpOnly SameSite
session cookies, CSRF on every write, logout; a session may use /api/v1 (reads with the
cookie, writes only with its CSRF header), and its writes are audited under its name."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from api_support import api_settings, running_api
from app_support import campaign_data, write_campaign
from ui_support import browser_session, csrf_of

from televox_pbx.config.settings import DashboardSettings
from televox_pbx.web.ui.passwords import hash_password, verify_password


def _with_password(tmp_path: Path, password: str) -> object:
    settings = api_settings(tmp_path)
    return settings.model_copy(update={"dashboard": DashboardSettings(
        admin_user="boss", admin_password_hash=hash_password(password, n=2**12))})


async def test_token_login_session_csrf_and_logout(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    write_campaign(settings, campaign_data("demo"))
    async with running_api(settings, dial=False) as api, browser_session(api) as (s, csrf):
        async with s.get("/ui/campaigns/demo") as resp:
            assert resp.status == 200 and "demo" in await resp.text()
        async with s.get("/api/v1/campaigns") as resp:  # reads: the cookie is enough
            assert resp.status == 200
        # A write with the cookie but without the CSRF header is refused (403, not 401).
        async with s.post("/api/v1/campaigns/demo/start") as resp:
            assert resp.status == 403 and (await resp.json())["error"] == "csrf_failed"
        async with s.post("/api/v1/campaigns/demo/start",
                          headers={"X-CSRF-Token": "wrong"}) as resp:
            assert resp.status == 403
        async with s.post("/api/v1/campaigns/demo/start",
                          headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200 and (await resp.json())["state"] == "RUNNING"
        audit = await api.json("GET", "/audit")
        assert [(e["actor"], e["action"]) for e in audit["entries"]] == [
            ("ui:ops", "campaign.start")]
        # Logging out needs the CSRF token too, and then the session is gone.
        async with s.post("/ui/logout", data={"csrf": "nope"}) as resp:
            assert resp.status == 403
        async with s.post("/ui/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/ui/login"
        async with s.get("/ui/", allow_redirects=False) as resp:
            assert resp.status == 303
        async with s.get("/api/v1/campaigns") as resp:
            assert resp.status == 401


async def test_cookie_flags_and_login_refusals(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    async with running_api(settings, dial=False) as api:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=api.base, cookie_jar=jar) as s:
            async with s.get("/ui/campaigns/demo", allow_redirects=False) as resp:
                assert resp.headers["Location"] == "/ui/login?next=/ui/campaigns/demo"
            async with s.get("/ui/login?next=/ui/dnc") as resp:
                page = await resp.text()
                login_csrf = csrf_of(page)
                assert "app.css" not in page  # the stylesheet is inlined: it needs a login
            # No CSRF token, or a wrong token: no session.
            async with s.post("/ui/login", data={"token": "x"}) as resp:
                assert resp.status == 403
            async with s.post("/ui/login", data={"csrf": login_csrf, "token": "wrong"}) as r:
                assert r.status == 401 and "Wrong token" in await r.text()
            async with s.post("/ui/login", data={"csrf": login_csrf, "token": "s3cret-token-"
                              "for-tests", "next": "https://evil.example/"},
                              allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/ui/"
                cookie = resp.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                assert "Path=/" in cookie


async def test_password_login(tmp_path: Path) -> None:
    settings = _with_password(tmp_path, "correct horse")
    async with running_api(settings, dial=False) as api:  # type: ignore[arg-type]
        form = {"username": "boss", "password": "correct horse"}
        async with browser_session(api, form=form) as (s, _), s.get("/ui/dnc") as resp:
            assert resp.status == 200 and "ui:boss" in await resp.text()
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=api.base, cookie_jar=jar) as s:
            async with s.get("/ui/login") as resp:
                login_csrf = csrf_of(await resp.text())
            for user, password in (("boss", "wrong"), ("admin", "correct horse")):
                async with s.post("/ui/login", data={"csrf": login_csrf, "username": user,
                                                     "password": password}) as resp:
                    assert resp.status == 401
            # Guessing is slow: after 5 failures from one address, even the right password
            # waits (429) until the window has passed.
            for _ in range(3):
                async with s.post("/ui/login", data={"csrf": login_csrf, "token": "guess"}):
                    pass
            good = {"csrf": login_csrf, "username": "boss", "password": "correct horse"}
            async with s.post("/ui/login", data=good) as resp:
                assert resp.status == 429 and "Too many" in await resp.text()


def test_password_hashes() -> None:
    stored = hash_password("pw-1234567", n=2**12)
    assert stored.startswith("scrypt$4096$8$1$") and "pw-1234567" not in stored
    assert verify_password("pw-1234567", stored)
    assert not verify_password("pw-1234568", stored)
    assert not verify_password("pw-1234567", None)
    assert not verify_password("pw-1234567", "scrypt$bad")
    assert hash_password("same", n=2**12) != hash_password("same", n=2**12)  # salted
