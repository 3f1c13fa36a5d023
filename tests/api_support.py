"""The daemon with its HTTP API on a free loopback port, the simulator and scripted engines,
and a client that carries the token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from app_support import fake_engines, write_settings

from televox_pbx.app import App
from televox_pbx.config.settings import Settings, WebhookSettings
from televox_pbx.store import Store
from televox_pbx.voice.session import Engines

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    app: App
    http: aiohttp.ClientSession  # with the token
    anon: aiohttp.ClientSession  # without
    base: str
    settings: Settings

    @property
    def store(self) -> Store:
        assert self.app.store is not None
        return self.app.store

    async def json(self, method: str, path: str, expect: int = 200,
                   **kw: Any) -> Any:
        async with self.http.request(method, "/api/v1" + path, **kw) as resp:
            body = await resp.json()
            assert resp.status == expect, (resp.status, body)
            return body


def api_settings(tmp_path: Path, numbers: dict[str, dict[str, Any]] | None = None,
                 webhooks: WebhookSettings | None = None, summaries: bool = False,
                 **http: Any) -> Settings:
    """`summaries`: the LLM summary worker runs (off by default: it would take the
    scripted LLM's replies meant for the calls)."""
    settings = write_settings(tmp_path, numbers or {})
    token = tmp_path / "api-token"
    token.write_text(f"# who:token\nops:{TOKEN}\n", encoding="utf-8")
    update: dict[str, Any] = {"http": settings.http.model_copy(
        update={"api_token_file": token, **http}),
        "models": settings.models.model_copy(update={"call_summaries": summaries})}
    if webhooks is not None:
        update["webhooks"] = webhooks
    return settings.model_copy(update=update)


@asynccontextmanager
async def running_api(settings: Settings, engines: Engines | None = None,
                      dial: bool = True) -> AsyncIterator[Api]:
    """App + API started; `dial`: the dialer loop runs too (campaigns, call results)."""
    app = App(settings, engines=engines or fake_engines([], []), audiosocket_port=0,
              http_port=0)
    await app.start()
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop)) if dial else None
    base = f"http://127.0.0.1:{app.web.port}"
    http = aiohttp.ClientSession(base_url=base, headers=AUTH)
    anon = aiohttp.ClientSession(base_url=base)
    try:
        yield Api(app, http, anon, base, settings)
    finally:
        await http.close()
        await anon.close()
        stop.set()
        if running is not None:
            await asyncio.wait_for(running, 15)
        await asyncio.wait_for(app.stop(), 15)


async def until(check: Any, timeout_s: float = 15.0) -> Any:
    """Poll an async condition (results land in the store) until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
