"""Model registry: locating, joining chunks atomically, sha256 checks, sidecars, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from televox_pbx.cli import main as cli_main
from televox_pbx.voice.engines import fileops
from televox_pbx.voice.engines.manifest import ManifestError, load_manifest
from televox_pbx.voice.engines.registry import FileStatus, ModelRegistry, ModelUnavailable

REPO = Path(__file__).resolve().parents[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A manifest with a chunked 'llm', an in-package 'stt' dir model and an in-place 'tts'."""
    models = tmp_path / "models"
    (models / "chunks").mkdir(parents=True)
    chunks = [os.urandom(1000 + i) for i in range(3)]
    for i, data in enumerate(chunks):
        (models / "chunks" / f"part{i:02d}.bin").write_bytes(data)
    whole = b"".join(chunks)
    pkg = tmp_path / "site" / "fake_stt_pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "model" / "model.bin").write_bytes(b"whisper-bytes")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (models / "voice.onnx").write_bytes(b"onnx")
    manifest = {"version": 1, "models": [
        {"id": "fake-llm", "kind": "llm", "main": "m.gguf", "files": [
            {"name": "m.gguf", "size": len(whole), "sha256": _sha(whole),
             "chunks": [{"path": f"chunks/part{i:02d}.bin"} for i in range(3)]}]},
        {"id": "fake-stt", "kind": "stt", "main": "model.bin", "files": [
            {"name": "model.bin", "size": 13, "sha256": _sha(b"whisper-bytes"),
             "source": {"package": "fake_stt_pkg", "path": "model/model.bin"}}]},
        {"id": "fake-tts", "kind": "tts", "main": "voice.onnx", "files": [
            {"name": "voice.onnx", "size": 4, "sha256": _sha(b"onnx"),
             "source": {"path": "voice.onnx"}}]},
    ]}
    path = models / "manifest.json"
    path.write_text(json.dumps(manifest))
    cache = tmp_path / "cache"
    return {"manifest": path, "cache": cache, "whole": whole, "models": models,
            "registry": ModelRegistry(load_manifest(path), cache)}


def _gguf(setup: dict[str, Any]) -> Path:
    path: Path = setup["cache"] / "fake-llm" / "m.gguf"
    return path


def test_check_joins_chunks_and_verifies(setup: dict[str, Any]) -> None:
    reg: ModelRegistry = setup["registry"]
    reports = {r.id: r for r in reg.check_all()}
    assert all(r.ok for r in reports.values())
    llm = reports["fake-llm"].files[0]
    assert llm.joined and llm.hashed and llm.status is FileStatus.OK
    assert _gguf(setup).read_bytes() == setup["whole"]
    assert reports["fake-stt"].main_path == (
        setup["models"].parent / "site" / "fake_stt_pkg" / "model" / "model.bin")
    # No temp files or half-written joins are left behind.
    leftovers = [p.name for p in _gguf(setup).parent.iterdir() if p.name != "m.gguf"]
    assert all(name.endswith(".lock") for name in leftovers)
    # The second check re-hashes (full) but does not join again.
    again = reg.check("fake-llm").files[0]
    assert again.status is FileStatus.OK and again.hashed and not again.joined


def test_resolve_trusts_sidecar_then_rehashes_when_the_file_changes(
        setup: dict[str, Any]) -> None:
    reg: ModelRegistry = setup["registry"]
    first = reg.resolve("fake-llm")
    assert first.main == _gguf(setup)
    fast = reg.check("fake-llm", full=False).files[0]
    assert fast.status is FileStatus.OK and not fast.hashed  # sidecar fast path
    _flip_byte(_gguf(setup), keep_mtime=False)
    repaired = reg.check("fake-llm", full=False, repair=True).files[0]
    assert repaired.joined and repaired.status is FileStatus.OK
    assert _gguf(setup).read_bytes() == setup["whole"]


def test_full_check_catches_a_flipped_byte_even_with_the_mtime_restored(
        setup: dict[str, Any]) -> None:
    reg: ModelRegistry = setup["registry"]
    reg.resolve("fake-llm")
    _flip_byte(_gguf(setup), keep_mtime=True)
    report = reg.check("fake-llm").files[0]
    assert report.status is FileStatus.MISMATCH
    assert "--repair" in report.detail
    assert _gguf(setup).read_bytes() != setup["whole"]  # check alone never rewrites


def test_missing_chunk_is_named(setup: dict[str, Any]) -> None:
    (setup["models"] / "chunks" / "part01.bin").unlink()
    reg: ModelRegistry = setup["registry"]
    report = reg.check("fake-llm").files[0]
    assert report.status is FileStatus.MISSING
    assert "part01.bin" in report.detail
    with pytest.raises(ModelUnavailable, match=r"part01\.bin"):
        reg.resolve("fake-llm")
    assert not _gguf(setup).exists()


def test_corrupt_chunk_never_lands_in_the_cache(setup: dict[str, Any]) -> None:
    _flip_byte(setup["models"] / "chunks" / "part02.bin", keep_mtime=False)
    report = setup["registry"].check("fake-llm").files[0]
    assert report.status is FileStatus.MISMATCH and "sha256" in report.detail
    assert not _gguf(setup).exists()
    assert not [p for p in _gguf(setup).parent.iterdir() if p.suffix == ".part"]


def test_missing_package_and_file_are_reported(setup: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (setup["models"] / "voice.onnx").unlink()
    reg: ModelRegistry = setup["registry"]
    tts = reg.check("fake-tts").files[0]
    assert tts.status is FileStatus.MISSING and "voice.onnx" in tts.detail
    wrong = setup["models"].parent / "site" / "fake_stt_pkg"
    wrong.rename(wrong.with_name("gone"))
    stt = reg.check("fake-stt").files[0]
    assert stt.status is FileStatus.MISSING and "fake_stt_pkg" in stt.detail


def test_concurrent_resolvers_join_once(setup: dict[str, Any],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    joins: list[int] = []
    real_join = fileops.join_atomic

    def counting_join(*args: Any, **kwargs: Any) -> str:
        joins.append(1)
        return real_join(*args, **kwargs)

    monkeypatch.setattr("televox_pbx.voice.engines.registry.join_atomic", counting_join)
    regs = [ModelRegistry(load_manifest(setup["manifest"]), setup["cache"]) for _ in range(6)]
    results: list[Path] = []
    threads = [threading.Thread(target=lambda r=r: results.append(r.resolve("fake-llm").main))
               for r in regs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(joins) == 1
    assert len(results) == 6 and all(p.read_bytes() == setup["whole"] for p in results)


def test_manifest_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"version": 1, "models": [
        {"id": "x", "kind": "llm", "main": "a", "files": [
            {"name": "a", "size": 1, "sha256": "0" * 64}]}]}))
    with pytest.raises(ManifestError, match=r"manifest\.json: .*exactly one of"):
        load_manifest(bad)
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match=r"manifest\.json:1: invalid JSON"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "nope.json")


def _cli(setup: dict[str, Any], *extra: str) -> int:
    return cli_main(["models", "check", "--all", "--manifest", str(setup["manifest"]),
                     "--cache-dir", str(setup["cache"]), *extra])


def test_cli_check_ok_then_corrupt_then_repair(setup: dict[str, Any],
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup["models"].parent)  # no config/televox.yaml here: defaults
    assert _cli(setup) == 0
    out = capsys.readouterr().out
    assert "fake-llm" in out and "sha256 OK (joined now)" in out
    _flip_byte(_gguf(setup), keep_mtime=True)
    assert _cli(setup, "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    llm = next(m for m in report["models"] if m["id"] == "fake-llm")
    assert llm["files"][0]["status"] == "MISMATCH"
    assert _cli(setup) == 1
    assert "sha256 MISMATCH" in capsys.readouterr().out
    assert _cli(setup, "--repair") == 0
    assert _cli(setup) == 0


def test_cli_unknown_configured_model_fails(setup: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup["models"].parent)
    code = cli_main(["models", "check", "--manifest", str(setup["manifest"]),
                     "--cache-dir", str(setup["cache"])])
    assert code == 1
    assert "UNKNOWN" in capsys.readouterr().out  # default ids are not in this manifest


def test_shipped_manifest_is_valid_and_lists_the_defaults() -> None:
    manifest = load_manifest(REPO / "models" / "manifest.json")
    ids = {m.id for m in manifest.models}
    assert {"whisper-tiny.en", "qwen2.5-1.5b-instruct-q4_k_m", "piper-joe-medium",
            "silero-vad-v6"} <= ids


@pytest.mark.models
def test_real_models_check(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed default models are found and their full sha256 matches."""
    monkeypatch.chdir(tmp_path)  # default settings: the default model ids
    monkeypatch.delenv("TELEVOX_CONFIG", raising=False)
    code = cli_main(["models", "check", "--json", "--manifest",
                     str(REPO / "models" / "manifest.json"),
                     "--cache-dir", str(REPO / "var" / "models")])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert {m["id"] for m in report["models"]} == {
        "whisper-tiny.en", "qwen2.5-1.5b-instruct-q4_k_m", "piper-joe-medium",
        "silero-vad-v6", "smart-turn-v3.2"}


def _flip_byte(path: Path, *, keep_mtime: bool) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
