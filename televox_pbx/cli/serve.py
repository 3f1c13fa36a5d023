"""`televox serve`: run the daemon until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from televox_pbx.cli.common import settings_from_args
from televox_pbx.logs import setup_logging

log = logging.getLogger("televox_pbx.serve")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the daemon (AMI, AudioSocket, dialer) until SIGTERM")
    p.add_argument("--no-models", action="store_true",
                   help="do not load the voice models (AMI, dialer and event log only)")
    p.add_argument("--exit-when-idle", action="store_true",
                   help="stop once no campaign is running and no call is in flight (demo)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    setup_logging(settings.logging.level)
    return asyncio.run(_main(args, settings))


async def _main(args: argparse.Namespace, settings: Any) -> int:
    from televox_pbx.app import App

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = App(settings, load_models=not args.no_models, http_port=settings.http.port)
    await app.start()
    log.info("televox daemon started", extra={"ami": app.ami_mode,
                                               "database": str(settings.database.path)})
    try:
        await app.run(stop, exit_when_idle=args.exit_when_idle)
    finally:
        await app.stop()
        log.info("televox daemon stopped")
    return 0
