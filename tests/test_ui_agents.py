"""The dashboard's agents pages (issue 18 item 6): the agents and the numbers, one agent's
knowledge search (the full page and its htmx fragment), and one person's history with a
link to each call's page and from the call page back to the person."""

from __future__ import annotations

import html
from pathlib import Path

import aiohttp
from agents_web_support import FAQ, LINE, PERSON, agents_settings, fill_history
from api_support import running_api
from ui_support import browser_session

PERSON_PATH = "/ui/people/%2B12125550199"


async def _page(s: aiohttp.ClientSession, path: str, expect: int = 200) -> str:
    async with s.get(path, allow_redirects=False) as resp:
        text = html.unescape(await resp.text())
        assert resp.status == expect, (path, resp.status, text[:500])
        return text


async def test_agents_pages_search_and_person(tmp_path: Path) -> None:
    async with running_api(agents_settings(tmp_path), dial=False) as api:
        await fill_history(api.store)
        async with api.anon.get("/ui/agents", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/ui/login")
        async with browser_session(api) as (s, _):
            agents = await _page(s, "/ui/agents")
            assert '<a href="/ui/agents" class="on">Agents</a>' in agents  # the nav
            assert '<a href="/ui/agents/clinic">clinic</a>' in agents
            assert f"{len(FAQ)} chunk(s)" in agents and "find_slots" in agents
            assert '<a href="/ui/campaigns/recall">recall</a>' in agents
            assert LINE in agents and "+15550100300" in agents and "inbound refused" in agents

            agent = await _page(s, "/ui/agents/clinic")
            assert "Oak Lane Dental" in agent and 'id="knowledge-search"' in agent
            assert 'id="agent-reply"' not in agent  # nothing asked yet
            asked = await _page(s, "/ui/agents/clinic?q=Can+I+park+my+car+near+you%3F")
            assert f"(answer):\n“{FAQ[0]['answer']}”" in asked
            assert 'id="chunks"' in asked and "Is there parking at the clinic?" in asked
            fragment = await _page(s, "/ui/agents/clinic/knowledge?q=Do+you+treat+children%3F")
            assert fragment.startswith('<div id="knowledge">') and "<html" not in fragment
            assert FAQ[1]["answer"] in fragment
            assert "has no indexed knowledge" in await _page(s, "/ui/agents/plain?q=parking")
            await _page(s, "/ui/agents/nobody", 404)
            await _page(s, "/ui/agents/nobody/knowledge?q=parking", 404)

            person = await _page(s, PERSON_PATH)
            assert "3 call(s), 2 text(s)" in person
            for call in ("in-call-0001", "beta-call-0001", "alpha-call-0001"):
                assert f'<a href="/ui/calls/{call}">' in person
            assert "Your cleaning is due" in person
            assert person.index("in-call-0001") < person.index("beta-call-0001") \
                < person.index("alpha-call-0001")  # newest first
            await _page(s, "/ui/people/not-a-number", 422)
            async with s.get("/ui/people", params={"phone": "(212) 555-0199"},
                             allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == PERSON_PATH

            call = await _page(s, "/ui/calls/beta-call-0001")
            assert f'<a href="{PERSON_PATH}" id="call-person">{PERSON}</a>' in call
