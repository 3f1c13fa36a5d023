"""Issue 12, item 11: a daemon that cannot start says why in one line and exits.

`televox serve` runs as a real process: a taken AudioSocket port, a corrupt database
file or a missing model gives one line on stderr (what failed, how to fix it; no
traceback) and a non-zero exit. Today's main printed a traceback and hung with the
database open, so the subprocess timeout here is the hang detector.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from televox_pbx.app import App
from televox_pbx.config.loader import load_settings
from televox_pbx.control.protocol import socket_path
from televox_pbx.startup import StartupError

ROOT = Path(__file__).resolve().parents[1]
# Far more than a clean exit needs (under a second); a hang ends here.
HANG_S = 20.0


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_settings(tmp_path: Path, **over: object) -> Path:
    data: dict[str, object] = {
        "database": {"path": "televox.db"},
        "events": {"jsonl_path": "events.jsonl"},
        "audiosocket": {"bind_host": "127.0.0.1", "port": free_port()},
        "http": {"bind_host": "127.0.0.1", "port": free_port()},
        "simulator": {"scenario": None},
    }
    data.update(over)
    path = tmp_path / "televox.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "televox_pbx", "--config", str(config), "serve", *args],
        cwd=config.parent, env=env, capture_output=True, text=True, timeout=HANG_S,
        check=False)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


def test_taken_audiosocket_port(tmp_path: Path, taken_port: int) -> None:
    config = write_settings(tmp_path, audiosocket={"bind_host": "127.0.0.1",
                                                   "port": taken_port})
    line = one_line(serve(config, "--no-models"))
    assert f"127.0.0.1:{taken_port}" in line and "already in use" in line
    assert "audiosocket.port" in line  # how to fix it


def test_taken_http_port(tmp_path: Path, taken_port: int) -> None:
    """The API starts last: everything before it is closed again."""
    config = write_settings(tmp_path, http={"bind_host": "127.0.0.1", "port": taken_port})
    line = one_line(serve(config, "--no-models"))
    assert f"127.0.0.1:{taken_port}" in line and "http.port" in line
    assert not (tmp_path / "televox.sock").exists()


def test_corrupt_database(tmp_path: Path) -> None:
    (tmp_path / "televox.db").write_bytes(b"this is not an SQLite database, " * 64)
    line = one_line(serve(write_settings(tmp_path), "--no-models"))
    assert "televox.db" in line and "not a database" in line
    assert "database.path" in line


def test_missing_model(tmp_path: Path) -> None:
    config = write_settings(tmp_path, models={"stt": "whisper-not-installed",
                                              "cache_dir": str(tmp_path / "models")})
    line = one_line(serve(config))
    assert "whisper-not-installed" in line and "televox models check" in line


def _store_threads() -> int:
    return sum(1 for t in threading.enumerate() if "connection_worker" in (t.name or ""))


async def test_a_failed_start_closes_what_it_had_opened(tmp_path: Path,
                                                        taken_port: int) -> None:
    """The control socket and the store were open when the port turned out to be taken:
    both are closed again (the store's worker thread gone, so the process can exit; the
    socket file removed, so the next start is not refused) and the error is one line."""
    before = _store_threads()
    config = write_settings(tmp_path, audiosocket={"bind_host": "127.0.0.1",
                                                   "port": taken_port})
    settings = load_settings(config)
    app = App(settings, load_models=False)
    with pytest.raises(StartupError, match="already in use") as err:
        await app.start()
    assert "\n" not in str(err.value)
    assert app.store is None and app.control is None
    assert not socket_path(settings).exists()
    for t in threading.enumerate():
        if "connection_worker" in (t.name or ""):
            t.join(timeout=5)
    assert _store_threads() == before
    await app.stop()  # a second close is harmless
