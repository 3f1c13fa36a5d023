"""Start-up failures as one line an operator can act on: what failed and how to fix it.

The App names the stage it is in; `startup_error` turns whatever that stage raised into a
StartupError whose message is one line (no traceback), and `televox serve` prints it.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from televox_pbx.config.settings import Settings


class StartupError(Exception):
    """The daemon cannot start; `str(exc)` is one line: what failed, how to fix it."""


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def check_database(path: Path) -> None:
    """Read the header of an existing database file before the store opens it, so a
    corrupt or unreadable file fails here (sqlite3 raises) and nothing is left open."""
    if str(path) == ":memory:" or not path.exists():
        return
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    finally:
        conn.close()


def startup_error(stage: str, exc: BaseException, settings: Settings, *,
                  audiosocket_port: int | None = None,
                  http_port: int | None = None) -> StartupError:
    """The one-line StartupError for `exc`, raised while starting `stage`."""
    if isinstance(exc, StartupError):
        return exc
    # A KeyError's str() is the repr of its message; the message itself reads better.
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    why = one_line(text) or type(exc).__name__
    s = settings
    if stage == "database":
        return StartupError(
            f"cannot open the database {s.database.path}: {why}. Check database.path in the "
            "settings and the file's permissions; if the file is damaged, restore it from a "
            "backup or move it aside (`televox db upgrade` creates a new one)")
    if stage == "models":
        return StartupError(
            f"the voice models cannot be loaded: {why}. Run `televox models check` to see "
            "what is missing (models.cache_dir, models/manifest.json), or start with "
            "--no-models")
    if stage == "audiosocket":
        port = s.audiosocket.port if audiosocket_port is None else audiosocket_port
        where = f"{s.audiosocket.bind_host}:{port}"
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return StartupError(
                f"the AudioSocket port {where} is already in use (another televox serve or "
                "`televox call`?): stop that process or set audiosocket.port")
        return StartupError(f"cannot listen for AudioSocket on {where}: {why}. Check "
                            "audiosocket.bind_host and audiosocket.port")
    if stage == "http":
        where = f"{s.http.bind_host}:{s.http.port if http_port is None else http_port}"
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return StartupError(
                f"the HTTP API port {where} is already in use (another televox serve?): "
                "stop that process or set http.port (`serve --http-port 0` picks a free one)")
        return StartupError(f"cannot serve the HTTP API on {where}: {why}. Check "
                            "http.bind_host and http.port")
    if stage == "ami":
        from televox_pbx.ami.client import AmiLoginError

        if isinstance(exc, AmiLoginError):
            return StartupError(f"{why}. Check ami.username and the secret "
                                f"(${s.ami.secret_env} or ami.secret_file)")
        where = f"{s.ami.host or '127.0.0.1'}:{s.ami.port}"
        return StartupError(f"cannot reach Asterisk's AMI at {where}: {why}. Check that "
                            "Asterisk is running and ami.host / ami.port")
    if stage == "simulator":
        return StartupError(f"the PBX simulator did not start: {why}. Check "
                            "simulator.scenario, or configure ami.host to use Asterisk")
    if stage == "control":  # its messages say what to do (another daemon, a bad path)
        return StartupError(why)
    if stage == "inbound numbers":
        return StartupError(f"{why}. Fix that agent file or the numbers in the settings")
    return StartupError(f"{stage} failed: {type(exc).__name__}: {why}")
