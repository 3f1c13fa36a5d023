"""Fixtures of the real-PBX tier: a real Asterisk 22, SIPp far ends, the real daemon.

One PBX and one daemon serve the whole session (starting them costs ~30 s with the models).
They are set up the way the README's "Run against your own Asterisk" says, from the
project's own asterisk/*.conf. A tier that cannot run fails with the reason; it is never
skipped (run `pytest -m "not real_pbx"` to leave it out on purpose).

Environment: TELEVOX_ASTERISK_PREFIX (default ~/.cache/televox/asterisk-22.10.1; built with
../shared/asterisk/build.sh when absent), TELEVOX_MODELS_DIR (default the repository's
var/models), TELEVOX_PBX_KEEP=1 keeps the run directory (/tmp/tvx-pbx-*) for a post-mortem.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from asterisk_conf import PbxAddress
from daemon import REPO, Daemon
from far_end import synthesizer, write_pcaps
from procs import (
    DEFAULT_PREFIX,
    Asterisk,
    Pbx,
    PbxUnavailable,
    find_asterisk,
    find_sipp,
    free_ports,
    sipp_far_end,
    wait_udp_bound,
    wait_until,
)

HERE = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared"
# DID -> (agent, business, first message): what each number's caller hears first.
INBOUND_AGENTS = {
    "+15550100200": ("frontdesk", "Acme Dental",
                     "Hello, this is Ava, an AI assistant at Acme Dental. How can I help?"),
    "+15550100300": ("billing", "Acme Billing",
                     "Good day, you have reached Acme Billing. I am Ava, an AI assistant."),
}


REAL = frozenset({"tools", "pbx", "daemon"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here that needs the real PBX carries the `real_pbx` marker (and `models`
    when it runs the daemon with its models), and the fault cases (they restart Asterisk
    and kill the daemon) run after all the others."""
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        if REAL & fixtures:
            item.add_marker(pytest.mark.real_pbx)
        if "daemon" in fixtures:
            item.add_marker(pytest.mark.models)
    items.sort(key=lambda item: Path(str(item.path)).name == "test_real_faults.py")


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    # Short: Asterisk's control socket path must fit in 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="tvx-pbx-"))
    yield path
    if os.environ.get("TELEVOX_PBX_KEEP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def tools() -> tuple[Path, Path, str]:
    """(asterisk binary, prefix, sipp); builds Asterisk when absent. Fails, never skips."""
    prefix = Path(os.environ.get("TELEVOX_ASTERISK_PREFIX") or DEFAULT_PREFIX)
    try:
        binary = find_asterisk(prefix, SHARED / "asterisk" / "build.sh")
        sipp = find_sipp()
    except PbxUnavailable as exc:
        pytest.fail(f"the real-PBX tier cannot run: {exc}", pytrace=False)
    return binary, prefix, sipp


@pytest.fixture(scope="session")
def far_end_audio(run_dir: Path) -> Path:
    """NN.pcap for every answering far end, spoken by the project's Piper voice."""
    from televox_pbx.config.settings import ModelSettings
    from televox_pbx.sim.speech import speech_from_tts
    from televox_pbx.voice.engines.holder import Engines

    engines = Engines(ModelSettings(cache_dir=models_dir()))
    speak = speech_from_tts(engines.tts())
    out = run_dir / "sipp"
    write_pcaps(out, synthesizer(speak))
    engines.close()
    return out


def models_dir() -> Path:
    return Path(os.environ.get("TELEVOX_MODELS_DIR") or REPO / "var" / "models")


@pytest.fixture(scope="session")
def pbx(tools: tuple[Path, Path, str], run_dir: Path, far_end_audio: Path) -> Iterator[Pbx]:
    binary, prefix, sipp = tools
    sip, ami, audiosocket, far, media = free_ports(5)
    address = PbxAddress(sip_port=sip, ami_port=ami, audiosocket_port=audiosocket,
                         far_end_port=far, secret=secrets.token_hex(24))
    # The far end first: Asterisk qualifies the trunk's contact as soon as it starts.
    far_end = sipp_far_end(sipp, far_end_audio, HERE / "sipp" / "far_end.xml", address, media)
    asterisk = Asterisk(binary, prefix, REPO / "asterisk", run_dir / "asterisk", address)
    try:
        far_end.start()
        wait_udp_bound(far)
        asterisk.start()
        pbx = Pbx(asterisk, far_end, address, run_dir, sipp, media)
        # The first OPTIONS ping comes at a random time within qualify_frequency: ask now.
        asterisk.rx("pjsip qualify televox-trunk")
        wait_until("the trunk's contact to qualify (SIPp answering OPTIONS)", pbx.trunk_up, 20)
        yield pbx
    finally:
        asterisk.stop()
        far_end.stop()


@pytest.fixture(scope="session")
def daemon(pbx: Pbx, run_dir: Path) -> Iterator[Daemon]:
    """`televox serve` with the real models against the PBX; two numbers, each answered
    by its own agent (INBOUND_AGENTS)."""
    workdir = run_dir / "daemon"
    workdir.mkdir(parents=True, exist_ok=True)
    d = Daemon(workdir, pbx.address, models_dir=models_dir(), logged_in=pbx.daemon_logged_in,
               numbers={number: name for number, (name, _, _) in INBOUND_AGENTS.items()})
    for name, business, first in INBOUND_AGENTS.values():
        d.write_agent(name, persona_name="Ava", business=business,
                      inbound={"first_message": first,
                               "goal": "Help the caller with their appointment."})
    try:
        d.start()
        yield d
    finally:
        d.stop()
