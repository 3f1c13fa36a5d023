"""`televox sim` argument and scenario errors, and the shipped example scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from televox_pbx.cli import main
from televox_pbx.cli.sim import parse_hostport
from televox_pbx.sim import Behaviour, load_scenario

REPO = Path(__file__).resolve().parents[1]


def test_example_scenario_loads() -> None:
    scenario = load_scenario(REPO / "config" / "sim-scenario.yaml")
    assert scenario.callee_for("+15550100005").behaviour == Behaviour.BUSY
    # The demo's patients (config/demo/contacts.csv) answer and wait for the agent.
    for number in ("+15550100001", "+15550100002", "+15550100003", "+15550100004"):
        callee = scenario.callee_for(number)
        assert callee.behaviour == Behaviour.ANSWER and callee.await_reply
    assert scenario.callee_for("15550100009").behaviour == Behaviour.VOICEMAIL
    assert scenario.callee_for("+19999999999") == scenario.default


def test_bad_scenario_names_file_line_and_field(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("numbers:\n  '1':\n    behaviour: answer\n    script:\n"
                   "      - say: hi\n        dtmf: '1'\n")
    assert main(["sim", "--scenario", str(bad), "--ami-port", "0"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5: numbers.1.script.0" in err and "exactly one" in err


def test_bad_audiosocket_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--audiosocket", "nohost", "--ami-port", "0"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert parse_hostport("10.0.0.5:9092") == ("10.0.0.5", 9092)
