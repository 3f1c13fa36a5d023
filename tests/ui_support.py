"""A logged-in dashboard client for the API test daemon (tests/api_support.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from api_support import TOKEN, Api

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


@asynccontextmanager
async def browser_session(api: Api, token: str = TOKEN,
                          form: dict[str, str] | None = None) -> AsyncIterator[
                              tuple[aiohttp.ClientSession, str]]:
    """(a cookie-keeping session logged in through the login form, its CSRF token)."""
    jar = aiohttp.CookieJar(unsafe=True)  # the test server is on 127.0.0.1
    async with aiohttp.ClientSession(base_url=api.base, cookie_jar=jar) as s:
        async with s.get("/ui/login") as resp:
            login_csrf = csrf_of(await resp.text())
        fields = form if form is not None else {"token": token}
        async with s.post("/ui/login", data={"csrf": login_csrf, **fields},
                          allow_redirects=False) as resp:
            assert resp.status == 303, (resp.status, await resp.text())
        async with s.get("/ui/") as resp:
            assert resp.status == 200
            csrf = csrf_of(await resp.text())
        yield s, csrf
