"""`televox sim`: run the PBX simulator standalone (AMI server + simulated callees)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from televox_pbx.cli.common import run, settings_from_args
from televox_pbx.config.loader import ConfigError
from televox_pbx.config.settings import Settings
from televox_pbx.logs import setup_logging
from televox_pbx.sim import Scenario, Simulator, SpeechUnavailable, load_scenario
from televox_pbx.sim.speech import SpeechSource, speech_from_tts

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "sim", help="run the PBX simulator (speaks AMI and AudioSocket like Asterisk 22)")
    p.add_argument("--scenario", type=Path, default=None,
                   help="callee behaviour per number (YAML; e.g. config/sim-scenario.yaml)")
    p.add_argument("--ami-host", default="127.0.0.1", help="AMI listen address")
    p.add_argument("--ami-port", type=int, default=5038, help="AMI listen port (5038)")
    p.add_argument("--audiosocket", default=None, metavar="HOST:PORT",
                   help="the daemon's AudioSocket (default: from settings)")
    p.add_argument("--out", type=Path, default=Path("var/sim"),
                   help="where per-call WAVs (heard/said) are written")
    p.add_argument("--placeholder-speech", action="store_true",
                   help="play tones instead of speech when Piper is not available")
    p.set_defaults(func=_sim)


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def load_piper_speech(settings: Settings) -> SpeechSource | None:
    """Piper through the voice engines (the configured TTS model), if it can be loaded."""
    try:
        from televox_pbx.voice.engines import Engines
        tts = Engines(settings.models).tts()
    except Exception as exc:
        log.warning("Piper is not available for the simulator", extra={"error": repr(exc)})
        return None
    return speech_from_tts(tts)


def _sim(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        scenario = load_scenario(args.scenario) if args.scenario else Scenario()
        target = (parse_hostport(args.audiosocket) if args.audiosocket else
                  (settings.audiosocket.advertise_host, settings.audiosocket.port))
    except ConfigError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"--audiosocket: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.logging.level)
    secret = settings.ami.secret()
    speech = load_piper_speech(settings)
    try:
        sim = Simulator(scenario, audiosocket=target, speech=speech,
                        allow_placeholder_speech=args.placeholder_speech, out_dir=args.out,
                        username=settings.ami.username,
                        secret=secret.get_secret_value() if secret else None)
    except SpeechUnavailable as exc:
        print(f"{exc} (or run with --placeholder-speech)", file=sys.stderr)
        return 1

    async def go() -> None:
        port = await sim.start(args.ami_host, args.ami_port)
        log.info("simulator listening", extra={"ami_port": port,
                                               "audiosocket": f"{target[0]}:{target[1]}"})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await sim.close()
    run(go())
    return 0
