"""`televox check` and `televox schema`, run through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from televox_pbx.cli import main
from televox_pbx.config.schema import render

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
SECRET = "Zq9-never-print-me"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped config/ in a temp cwd, so paths print as config/..."""
    shutil.copytree(CONFIG, tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TELEVOX_CONFIG", raising=False)
    monkeypatch.delenv("TELEVOX_AMI_SECRET", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, (out.out + out.err).splitlines()


def test_shipped_config_passes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "check", "config")
    assert code == 0, lines
    assert "OK config/televox.yaml" in lines
    assert "OK config/campaigns/dental.yaml" in lines
    assert "OK config/campaigns/survey.yaml" in lines
    assert any("simulator" in line for line in lines)


def test_dir_defaults_to_config(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "check")
    assert code == 0 and "OK config/televox.yaml" in lines


def test_three_precise_errors_and_exit_1(workdir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "config" / "campaigns" / "dental.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("an AI assistant calling", "calling")            # no disclosure
    text = text.replace("calls_per_minute: 6 ", "calls_per_minute: lots ")  # wrong type
    text = text.replace("ring_timeout_s: 30", "ring_timeout_s: 30\nring_tone: loud")  # unknown
    path.write_text(text, encoding="utf-8")
    lines_of = {key: n for n, line in enumerate(text.splitlines(), 1)
                for key in ("opening_line:", "calls_per_minute:", "ring_tone:")
                if line.strip().startswith(key)}

    code, lines = run(capsys, "check", "config")
    assert code == 1
    errors = [line for line in lines if line.startswith("config/campaigns/dental.yaml:")]
    assert len(errors) == 3, lines
    assert f"config/campaigns/dental.yaml:{lines_of['opening_line:']}: agent.opening_line: " \
           "must disclose that the caller is an AI" in "\n".join(errors)
    assert any(e.startswith(f"config/campaigns/dental.yaml:{lines_of['calls_per_minute:']}: "
                            "pacing.calls_per_minute: Input should be a valid number")
               for e in errors)
    assert f"config/campaigns/dental.yaml:{lines_of['ring_tone:']}: ring_tone: unknown key" \
        in errors
    # The other files are still checked and reported good.
    assert "OK config/campaigns/survey.yaml" in lines
    assert lines[-1].startswith("3 error(s) in 1 file(s)")


def test_window_error_format(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "config" / "campaigns" / "survey.yaml"
    text = path.read_text(encoding="utf-8").replace('start: "10:00"', 'start: "07:00"')
    path.write_text(text, encoding="utf-8")
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "start:" in t)
    code, lines = run(capsys, "check", "config")
    assert code == 1
    assert (f"config/campaigns/survey.yaml:{line}: calling_window.start: earlier than 08:00 "
            "needs calling_window.legal_override: true") in lines


def test_import_mapping_targets_checked(workdir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = workdir / "config" / "campaigns" / "survey.yaml"
    path.write_text(path.read_text().replace("Phone: phone1", "Phone: phone11"))
    code, lines = run(capsys, "check", "config")
    assert code == 1
    assert any("survey.yaml:" in x and "import_mapping.Phone: " in x for x in lines), lines


def test_secret_reported_never_printed(workdir: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = workdir / "config" / "televox.yaml"
    settings.write_text(settings.read_text().replace("# host: 127.0.0.1", "host: 127.0.0.1"))
    code, lines = run(capsys, "check", "config")
    assert code == 0  # a missing secret is the environment's problem, not the file's
    assert any("secret NOT available" in x and "TELEVOX_AMI_SECRET" in x for x in lines)

    monkeypatch.setenv("TELEVOX_AMI_SECRET", SECRET)
    code, lines = run(capsys, "check", "config")
    assert code == 0
    assert any("secret available" in x for x in lines)
    assert not any(SECRET in x for x in lines)


def test_secret_file_reported_never_printed(workdir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "config" / "ami-secret").write_text(SECRET + "\n")
    settings = workdir / "config" / "televox.yaml"
    text = settings.read_text().replace("# host: 127.0.0.1", "host: 127.0.0.1")
    settings.write_text(text.replace("# secret_file: /etc/televox/ami-secret",
                                     "secret_file: ami-secret"))
    code, lines = run(capsys, "check", "config")
    assert code == 0
    assert any("secret available (from secret file config/ami-secret)" in x for x in lines)
    assert not any(SECRET in x for x in lines)


def test_missing_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "campaigns").mkdir(parents=True)
    code, lines = run(capsys, "check", "conf")
    assert code == 1
    assert "conf/televox.yaml: (file): settings file not found" in lines


def test_bad_settings_still_checks_campaigns(workdir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    settings = workdir / "config" / "televox.yaml"
    settings.write_text(settings.read_text().replace("port: 9092", "port: ninety"))
    code, lines = run(capsys, "check", "config")
    assert code == 1
    assert any(x.startswith("config/televox.yaml:") and "audiosocket.port" in x for x in lines)
    assert "OK config/campaigns/dental.yaml" in lines


def test_campaigns_dir_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "televox.yaml").write_text("campaigns_dir: ../camps\n")
    (tmp_path / "camps").mkdir()
    (tmp_path / "camps" / "x.yaml").write_text(textwrap.dedent("""\
        name: y
        """))
    code, lines = run(capsys, "--config", "etc/televox.yaml", "check")
    assert code == 1
    assert "OK etc/televox.yaml" in lines
    assert any(x.startswith("etc/../camps/x.yaml:1: name: must match") for x in lines), lines


def test_empty_campaigns_dir_is_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c" / "campaigns").mkdir(parents=True)
    (tmp_path / "c" / "televox.yaml").write_text("")
    code, lines = run(capsys, "check", "c")
    assert code == 0
    assert "no campaign files in c/campaigns" in lines


# --- JSON Schema ----------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "shipped"), [("agent", "agent.schema.json"),
                                               ("campaign", "campaign.schema.json"),
                                               ("settings", "televox.schema.json")])
def test_shipped_schema_matches_models(kind: str, shipped: str) -> None:
    # If this fails: televox schema campaign > config/campaign.schema.json (and settings
    # > config/televox.schema.json), then commit the result.
    assert (CONFIG / shipped).read_text(encoding="utf-8") == render(kind)


def test_schema_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "campaign"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Campaign"
    assert schema["additionalProperties"] is False
    assert {"name", "agent", "caller_id", "trunk"} <= set(schema["required"])
    window = schema["$defs"]["CallingWindow"]["properties"]
    assert window["start"]["type"] == "string" and "pattern" in window["start"]
