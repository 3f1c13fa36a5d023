"""The dashboard end to end in real headless Chromium (Debian's /usr/bin/chromium, driven
by Playwright; no browser download): log in, start a campaign against the simulator and
watch its progress bar move, open a finished call and play its recording, correct the
disposition, import a CSV through the mapping page. Screenshots of the main pages go to
$TELEVOX_SCREENSHOTS (default: the test's tmp dir); the path is printed.

Marked `browser`. Without Chromium or Playwright these tests fail, never skip:
`apt-get install -y chromium` and `pip install playwright` (scripts/setup.sh does both)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_support import TOKEN, Api, api_settings, running_api, until
from app_support import campaign_data, fake_engines, write_campaign

from televox_pbx.config.settings import DashboardSettings
from televox_pbx.voice.interfaces import ToolCall

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TELEVOX_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 60_000  # generous: a loaded 2-core CI box; every wait is on a condition
ANSWER = "+12125550101"
BUSY = [f"+1212555020{i}" for i in range(4)]
CALLEE = "Yes, tell me more please."


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("TELEVOX_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {where}")
    return where


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install playwright")
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--autoplay-policy=no-user-gesture-required", "--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


async def _login(page: Any, api: Api) -> None:
    await page.goto(api.base + "/ui/campaigns/demo")
    assert "/ui/login?next=/ui/campaigns/demo" in page.url
    await page.fill("#token-login input[name=token]", TOKEN)
    await page.click("#token-login button")
    await page.wait_for_url("**/ui/campaigns/demo", timeout=WAIT_MS)


async def test_dashboard_end_to_end(tmp_path: Path, browser: Any, shots: Path) -> None:
    numbers = {ANSWER: {"behaviour": "answer", "ring_s": 0.2, "script": [{"say": CALLEE}]},
               **{n: {"behaviour": "busy"} for n in BUSY}}
    settings = api_settings(tmp_path, numbers)
    settings = settings.model_copy(update={"dashboard": DashboardSettings(
        cost_per_minute=0.25, currency="EUR")})
    data = campaign_data("demo", pacing={"calls_per_minute": 600, "max_concurrent": 1})
    data["agent"]["opening_line"] = "Hi {{name}}, I'm Ava, an AI assistant, about {{plan}}."
    write_campaign(settings, data)
    engines = fake_engines([CALLEE], [["Thanks, goodbye! ",
                                      ToolCall("set_disposition", {"disposition": "interested"}),
                                      ToolCall("end_call", {"reason": "done"})]])
    async with running_api(settings, engines) as api:
        await api.json("POST", "/campaigns/demo/contacts", 201, json={"contacts": [
            {"name": "Ann", "phone": ANSWER, "plan": "gold"},
            *[{"name": f"B{i}", "phone": n, "plan": "tin"} for i, n in enumerate(BUSY)]]})
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        context.on("weberror", lambda e: errors.append(str(e.error)))
        page = await context.new_page()
        await page.goto(api.base + "/ui/")
        await page.screenshot(path=str(shots / "login.png"), full_page=True)
        await _login(page, api)

        # A second tab watches the campaigns list; nothing reloads it, only SSE moves it.
        watcher = await context.new_page()
        await watcher.goto(api.base + "/ui/")
        bar = '[data-progress="demo"] progress'
        assert await watcher.eval_on_selector(bar, "p => p.value") == 0
        await watcher.evaluate("window.__notReloaded = true")
        # A third tails the AMI event log, filtered to hang-ups.
        tail = await context.new_page()
        await tail.goto(api.base + "/ui/events?event=Hangup")
        await tail.wait_for_function("document.getElementById('tail-state').textContent"
                                     " === 'live'")
        async with page.expect_navigation():  # the page reloads once the API said yes
            await page.click("#action-start")
        await page.wait_for_function(
            "document.getElementById('campaign-state').textContent.trim() === 'RUNNING'"
            " || document.getElementById('campaign-state').textContent.trim() === 'COMPLETED'")
        await watcher.wait_for_function(
            "document.querySelector('[data-progress=\"demo\"] progress').value === 5")
        assert await watcher.evaluate("window.__notReloaded === true")
        await watcher.wait_for_function(
            "document.querySelector('[data-progress=\"demo\"] [data-field=state]')"
            ".textContent === 'COMPLETED'")
        await watcher.screenshot(path=str(shots / "campaigns.png"), full_page=True)
        await tail.wait_for_function("document.querySelectorAll('#event-tail tr').length >= 5")
        events = await tail.eval_on_selector_all("#event-tail tr td:nth-child(3)",
                                                 "tds => tds.map(td => td.textContent)")
        assert set(events) == {"Hangup"}
        await tail.screenshot(path=str(shots / "events.png"), full_page=True)
        await tail.close()

        # The campaign page swapped in the buttons that fit COMPLETED, without a reload.
        await page.wait_for_selector("#action-restart")
        assert await page.query_selector("#action-pause") is None
        # The finished call: transcript, recording that loads and plays, disposition edit.
        await page.reload()
        await page.wait_for_selector("#cost-chart canvas")
        assert await page.inner_text("#kpi-calls") == "5"
        assert (await page.inner_text("#cost-total")).endswith(" EUR")
        await page.screenshot(path=str(shots / "campaign.png"), full_page=True)
        await page.click('#calls a.call-link[data-status="completed"]')
        await page.wait_for_selector("#transcript")
        assert CALLEE in await page.inner_text("#transcript")
        await page.wait_for_function(
            "(() => { const a = document.querySelector('audio.recording');"
            " return a && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0; })()")
        await page.evaluate("document.querySelector('audio.recording').play()")
        await page.wait_for_function(
            "document.querySelector('audio.recording').currentTime > 0")
        await page.screenshot(path=str(shots / "call.png"), full_page=True)
        assert await page.inner_text("#call-disposition") == "INTERESTED"
        await page.select_option("#disposition-select", "CALLBACK")
        async with page.expect_navigation():
            await page.click("#disposition-save")
        await page.wait_for_function(
            "document.getElementById('call-disposition').textContent === 'CALLBACK'")
        call_id = page.url.rsplit("/", 1)[1]
        saved = await api.json("GET", f"/calls/{call_id}")
        assert saved["disposition"] == "CALLBACK"

        # A CSV through the mapping page: change a guessed column, preview, import.
        csv = tmp_path / "more-leads.csv"
        csv.write_text("Customer,Tel,Tier\nDee Fox,(212) 555-0111,platinum\n"
                       "Eve Gray,nope,silver\n", encoding="utf-8")
        await page.goto(api.base + "/ui/campaigns/demo/import")
        await page.set_input_files("#csv-file", str(csv))
        await page.click("#upload")
        await page.wait_for_selector("#mapping-form")
        # Neither header is known: the guess is a variable for both; the admin fixes that.
        assert await page.input_value('select[data-column="Customer"]') == "var:CUSTOMER"
        await page.select_option('select[data-column="Customer"]', "name")
        await page.select_option('select[data-column="Tier"]', "var:PLAN")
        await page.click("#preview-button")
        await page.wait_for_function(
            "document.getElementById('preview').innerText.includes("
            "'Hi Dee Fox, I\\'m Ava, an AI assistant, about platinum.')")
        await page.screenshot(path=str(shots / "import-mapping.png"), full_page=True)
        await page.click("#import-button")
        await page.wait_for_selector("#import-summary")
        assert await page.inner_text("#added") == "1"
        assert "invalid" in await page.inner_text("#rejects")
        await page.screenshot(path=str(shots / "import-summary.png"), full_page=True)

        # DNC: list a number with a reason; "Call now" to it is refused by the gate.
        await page.goto(api.base + "/ui/dnc")
        await page.fill("#dnc-add textarea[name=numbers]", "(212) 555-0199")
        await page.fill("#dnc-add input[name=reason]", "asked on the phone")
        async with page.expect_navigation():
            await page.click("#dnc-add button")
        assert "asked on the phone" in await page.inner_text("#dnc-list")
        await page.select_option("#call-now select[name=campaign]", "demo")
        await page.fill("#call-now input[name=phone]", "+12125550199")
        await page.click("#call-now-button")
        await page.wait_for_function(
            "document.querySelector('#call-now [data-result]').textContent.includes('409')")
        assert "call_refused" in await page.inner_text("#call-now [data-result]")
        await page.screenshot(path=str(shots / "dnc.png"), full_page=True)

        async def audited() -> list[tuple[str, str]]:
            entries = (await api.json("GET", "/audit"))["entries"]
            return [(e["actor"], e["action"]) for e in reversed(entries)]
        assert await until(audited) == [("ops", "contacts.add"), ("ui:ops", "campaign.start"),
                                        ("ui:ops", "call.disposition"),
                                        ("ui:ops", "contacts.import_csv"),
                                        ("ui:ops", "dnc.add")]
        await context.close()
        assert errors == []  # no script on any page threw
