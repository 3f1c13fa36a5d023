"""One node of the two-box real-PBX test (test_real_cluster.py), run as its own process:
`python cluster_node.py televox.yaml`.

The daemon's App, as `televox serve` builds it, on PostgreSQL beside its own Asterisk, with
the scripted voice engines of the whole-daemon tests instead of the real models: what is
tested is the nodes' takeover through AMI, not the conversation, and loading the models
twice would cost ~60 s on this box. The agent's scripted replies keep the call up (the
far end talks; the silence limits are long). SIGTERM stops it; the test SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from app_support import fake_engines

from televox_pbx.app import App
from televox_pbx.config.loader import load_settings
from televox_pbx.logs import setup_logging


async def main(path: Path) -> None:
    settings = load_settings(path)
    setup_logging(settings.logging.level)
    app = App(settings, engines=fake_engines([], ["Yes, I see. Tell me more."] * 30),
              control=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    print("node started", flush=True)
    try:
        await app.run(stop)
    finally:
        await app.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
