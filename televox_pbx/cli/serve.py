"""`televox serve`: run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from televox_pbx.cli.common import settings_from_args
from televox_pbx.logs import setup_logging

log = logging.getLogger("televox_pbx.serve")

EXIT_START_FAILED = 1


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the daemon (AMI, AudioSocket, dialer) until SIGTERM")
    p.add_argument("--no-models", action="store_true",
                   help="do not load the voice models (AMI, dialer and event log only)")
    p.add_argument("--exit-when-idle", action="store_true",
                   help="stop once no campaign is running and no call is in flight (demo)")
    p.add_argument("--audiosocket-port", type=int, default=None, metavar="PORT",
                   help="listen for AudioSocket on PORT instead of audiosocket.port; 0 picks "
                        "a free one (only with the built-in simulator, which is told it)")
    p.add_argument("--http-port", type=int, default=None, metavar="PORT",
                   help="serve the HTTP API on PORT instead of http.port; 0 picks a free one")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.audiosocket_port == 0 and settings.ami.host:
        print("serve: --audiosocket-port 0 works only with the built-in simulator: Asterisk's "
              "dialplan needs a fixed port", file=sys.stderr)
        return EXIT_START_FAILED
    setup_logging(settings.logging.level)
    return asyncio.run(_main(args, settings))


async def _main(args: argparse.Namespace, settings: Any) -> int:
    from televox_pbx.app import App
    from televox_pbx.startup import StartupError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http_port = settings.http.port if args.http_port is None else args.http_port
    app = App(settings, load_models=not args.no_models,
              audiosocket_port=args.audiosocket_port, http_port=http_port)
    try:
        await app.start()  # on failure it has closed whatever it had started
    except StartupError as exc:
        log.error("televox daemon did not start", extra={"error": str(exc)})
        print(f"televox serve: {exc}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED
    log.info("televox daemon started", extra={
        "ami": app.ami_mode, "database": settings.database.target(),
        "audiosocket_port": app.audiosocket.port if app.audiosocket else None,
        "http_port": app.web.port if app.web is not None else None})
    try:
        await app.run(stop, exit_when_idle=args.exit_when_idle)
    finally:
        await app.stop()
        log.info("televox daemon stopped")
    return 0
