"""`televox sms send|status` through the real command line, against the simulator's AMI
(run on a loop of its own thread: the CLI runs its own event loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from app_support import campaign_data

from televox_pbx.cli import main
from televox_pbx.sim import Simulator

SECRET = "sms-cli-secret"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    loop = asyncio.new_event_loop()
    sim = Simulator(secret=SECRET, allow_placeholder_speech=True)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_send_and_status(tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TELEVOX_AMI_SECRET", SECRET)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "crm.yaml").write_text(yaml.safe_dump(campaign_data("crm")))
    settings = tmp_path / "televox.yaml"
    settings.write_text(f"database: {{path: {tmp_path / 't.db'}}}\n"
                        f"campaigns_dir: {tmp_path / 'campaigns'}\n"
                        f"ami: {{host: 127.0.0.1, port: {sim.ami_port}}}\n")

    def cli(*argv: str) -> int:
        return main(["-c", str(settings), "sms", *argv])

    assert cli("send", "212-555-0101", "--campaign", "crm", "--text", "See you at 3pm.") == 0
    assert [(m.to, m.body) for m in sim.messages] == [("+12125550101", "See you at 3pm.")]
    assert cli("send", "212-555-0101", "--campaign", "crm", "--text", "x" * 200) == 2
    assert "too_long" in capsys.readouterr().err
    assert cli("status", "crm") == 0  # no contacts of its own: the single text is no row
    assert "no recipients" in capsys.readouterr().err
    assert len(sim.messages) == 1
