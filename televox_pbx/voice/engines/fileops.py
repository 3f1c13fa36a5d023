"""File plumbing for model files: hashing, verified-digest sidecars, locks, atomic joins.

Joins write to a temporary name in the target folder, fsync, check the digest and only
then rename into place, so a reader never sees a half-written or wrong model file; a lock
file serialises concurrent joiners (threads or processes) of the same target.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

_BLOCK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What we know was verified: this digest, for a file with exactly this identity."""

    path: str
    sha256: str
    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def for_file(cls, path: Path, sha256: str) -> Sidecar:
        st = path.stat()
        return cls(str(path.resolve()), sha256, st.st_size, st.st_mtime_ns, st.st_ino)

    def matches(self, path: Path, sha256: str) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        return (self.path == str(path.resolve()) and self.sha256 == sha256
                and self.size == st.st_size and self.mtime_ns == st.st_mtime_ns
                and self.inode == st.st_ino)


def read_sidecar(path: Path) -> Sidecar | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Sidecar(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_sidecar(path: Path, sidecar: Sidecar) -> bool:
    """Best effort (a read-only cache only costs a re-hash next time); returns success."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(asdict(sidecar)).encode())
        return True
    except OSError:
        return False


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (flock) on `path`; works across processes and threads.
    In a read-only cache nobody can join either, so there we go on without the lock."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+b")
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class JoinError(Exception):
    """Joining chunks failed: a chunk is missing, space ran out, or the digest is wrong."""


def join_atomic(chunks: Sequence[Path], target: Path, *, expected_sha256: str,
                expected_size: int) -> str:
    """Concatenate `chunks` into `target` atomically; returns the digest. The caller holds
    the target's lock. Nothing lands at `target` unless size and sha256 match."""
    for chunk in chunks:
        if not chunk.is_file():
            raise JoinError(f"missing chunk file {chunk}")
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < expected_size:
        raise JoinError(f"not enough space in {target.parent}: need {expected_size} bytes, "
                        f"{free} free")
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if size != expected_size or actual != expected_sha256:
            raise JoinError(f"joined chunks for {target.name} are wrong: size {size} "
                            f"(want {expected_size}), sha256 {actual} (want {expected_sha256})")
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return actual
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
