"""The real processes of the real-PBX tests: Asterisk in the foreground, SIPp user agents.

Each runs in its own session (process group), its output goes to a file in the run's
directory, and `stop()` always ends it: politely first, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from asterisk_conf import PbxAddress, render

ASTERISK_VERSION = "22.10.1"
DEFAULT_PREFIX = Path.home() / ".cache" / "televox" / f"asterisk-{ASTERISK_VERSION}"


class PbxUnavailable(RuntimeError):
    """Asterisk or SIPp cannot run here; the message says why and what to do."""


def free_ports(count: int) -> list[int]:
    """Ports free for both TCP and UDP on loopback right now."""
    found: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(found) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                tcp.close()
                udp.close()
                continue
            held += [tcp, udp]
            found.append(port)
    finally:
        for s in held:
            s.close()
    return found


def wait_until(what: str, check: object, timeout_s: float, step_s: float = 0.2) -> object:
    """Poll `check()` (a callable) until it returns something truthy; AssertionError else."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(step_s)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
          grace_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def find_asterisk(prefix: Path, build_script: Path) -> Path:
    """PREFIX/sbin/asterisk at the pinned version, built with build.sh when absent."""
    binary = prefix / "sbin" / "asterisk"

    def version_ok() -> bool:
        if not binary.exists():
            return False
        out = subprocess.run([binary, "-V"], capture_output=True, text=True, check=False)
        return f"Asterisk {ASTERISK_VERSION}" in out.stdout

    if version_ok():
        return binary
    if not build_script.exists():
        raise PbxUnavailable(
            f"no Asterisk {ASTERISK_VERSION} at {prefix} and no build script at "
            f"{build_script} (the repository's parent directory must hold shared/asterisk); "
            f"set TELEVOX_ASTERISK_PREFIX to an install of it")
    log = prefix.parent / f"asterisk-{ASTERISK_VERSION}-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        done = subprocess.run(["bash", str(build_script), str(prefix)], stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not version_ok():
        tail = log.read_text(errors="replace")[-2000:]
        raise PbxUnavailable(f"building Asterisk with {build_script} failed "
                             f"(exit {done.returncode}); end of {log}:\n{tail}")
    return binary


def find_sipp() -> str:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise PbxUnavailable("SIPp is not installed: apt-get install sip-tester "
                             "(../shared/asterisk/build.sh does it when run as root)")
    if os.geteuid() != 0:
        raise PbxUnavailable("SIPp plays RTP from pcap files through a raw socket, which "
                             "needs root (or CAP_NET_RAW on the sipp binary)")
    return sipp


class Asterisk:
    """One Asterisk, configured from the project's asterisk/ files, in the foreground."""

    def __init__(self, binary: Path, prefix: Path, src: Path, root: Path,
                 address: PbxAddress) -> None:
        self.binary = binary
        self.root = root
        self.address = address
        self.conf = render(src, root, prefix, address)
        self.log_path = root / "asterisk.out"
        self.full_log = root / "var" / "log" / "full.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.binary), "-f", "-n", "-C", str(self.conf)], cwd=self.root,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.wait_booted(timeout_s)

    def wait_booted(self, timeout_s: float = 30.0) -> None:
        def booted() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise PbxUnavailable(f"Asterisk exited with {self.proc.returncode}; see "
                                     f"{self.log_path} and {self.full_log}")
            return "fully booted" in self.rx("core waitfullybooted", check=False)
        wait_until("Asterisk to boot", booted, timeout_s, 0.3)

    def rx(self, command: str, *, check: bool = True, timeout_s: float = 15.0) -> str:
        """Run one CLI command on the running Asterisk (its control socket)."""
        done = subprocess.run([str(self.binary), "-C", str(self.conf), "-rx", command],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"asterisk -rx {command!r}: {done.stderr or done.stdout}")
        return done.stdout

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self.rx("core stop now", check=False, timeout_s=5)
            _stop(self.proc, signal.SIGTERM, 10)


class Sipp:
    """One SIPp process; `messages()` reads its message trace."""

    def __init__(self, sipp: str, workdir: Path, name: str, args: list[str]) -> None:
        self.workdir = workdir
        self.name = name
        self.trace = workdir / f"{name}.messages.log"
        self.errors = workdir / f"{name}.errors.log"
        self.out = workdir / f"{name}.out"
        self.argv = [sipp, *args, "-nostdin", "-trace_msg", "-message_file", str(self.trace),
                     "-trace_err", "-error_file", str(self.errors)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sipp:
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=out,
                                         start_new_session=True)
        return self

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, 5)

    def messages(self) -> list[str]:
        """Every SIP message SIPp received or sent, in order."""
        if not self.trace.exists():
            return []
        text = self.trace.read_text(errors="replace")
        parts = re.split(r"^-{20,} .*$", text, flags=re.M)
        return [p.strip() for p in parts if p.strip()]

    def invites(self) -> Counter[str]:
        """Dialed number -> INVITEs received (distinct Call-IDs: retransmissions count once)."""
        seen: dict[str, set[str]] = {}
        for msg in self.messages():
            m = re.search(r"^INVITE sip:([^@;>]+)@", msg, flags=re.M)
            if m is None or "message received" not in msg.splitlines()[0]:
                continue
            call = re.search(r"^Call-ID:\s*(\S+)", msg, flags=re.M | re.I)
            seen.setdefault(m.group(1), set()).add(call.group(1) if call else msg)
        return Counter({n: len(ids) for n, ids in seen.items()})


def sipp_far_end(sipp: str, workdir: Path, scenario: Path, address: PbxAddress,
                 media_port: int) -> Sipp:
    """The provider side: answers every INVITE per sipp/far_end.xml."""
    shutil.copyfile(scenario, workdir / scenario.name)  # SIPp finds the pcaps beside it
    return Sipp(sipp, workdir, "far-end", [
        "-sf", scenario.name, "-i", address.host, "-p", str(address.far_end_port),
        "-mi", address.host, "-mp", str(media_port), "-aa", "-max_recv_loops", "1000"])


def wait_udp_bound(port: int, timeout_s: float = 10.0) -> None:
    def bound() -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        finally:
            s.close()
        return False
    wait_until(f"UDP port {port} to be bound", bound, timeout_s, 0.1)


def sipp_caller(sipp: str, workdir: Path, scenario: Path, address: PbxAddress, *, did: str,
                caller: str, sip_port: int, media_port: int) -> Sipp:
    """One inbound call from `caller` to `did` through the trunk (sipp/caller.xml)."""
    shutil.copyfile(scenario, workdir / scenario.name)
    return Sipp(sipp, workdir, f"caller-{caller}", [
        f"{address.host}:{address.sip_port}", "-sf", scenario.name, "-s", did,
        "-key", "caller", caller, "-i", address.host, "-p", str(sip_port),
        "-mi", address.host, "-mp", str(media_port), "-m", "1", "-l", "1"])


@dataclass
class Pbx:
    asterisk: Asterisk
    far_end: Sipp
    address: PbxAddress
    run_dir: Path
    sipp: str
    media_port: int

    def trunk_up(self) -> bool:
        return " Avail " in self.asterisk.rx("pjsip show contacts", check=False)

    def daemon_logged_in(self) -> bool:
        out = self.asterisk.rx("manager show connected", check=False)
        return any(line.split()[:1] == ["televox"] for line in out.splitlines())
