"""The real daemon (`televox serve`) pointed at a real Asterisk, as a user sets it up.

settings_yaml() writes the televox.yaml of the README's "Run against your own Asterisk";
the AMI secret reaches the daemon through TELEVOX_AMI_SECRET, never the YAML. Campaigns
and contacts go in with the same CLI commands a user types. The store is read directly
(read-only SQLite) for the assertions.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from asterisk_conf import PbxAddress
from procs import free_ports, wait_until

REPO = Path(__file__).resolve().parents[2]
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
OPENING = ("Hi {{NAME}}, this is Ava, an AI assistant calling from Acme Dental about your "
           "appointment.")
# The sentence of the opening that says the caller is an AI (what must be heard whole).
DISCLOSURE = "this is Ava, an AI assistant calling from Acme Dental"


def settings_yaml(address: PbxAddress, *, numbers: dict[str, str],
                  models_dir: Path) -> dict[str, Any]:
    """televox.yaml for a daemon beside this Asterisk (README: "Run against your own
    Asterisk"): AMI host and port, AudioSocket on the port the dialplan dials."""
    return {
        "ami": {"host": address.host, "port": address.ami_port, "username": "televox"},
        "audiosocket": {"bind_host": address.host, "port": address.audiosocket_port,
                        "advertise_host": address.host},
        "database": {"path": "televox.db"},
        "models": {"cache_dir": str(models_dir)},
        "events": {"jsonl_path": "events.jsonl"},
        "logging": {"level": "INFO"},
        "campaigns_dir": "campaigns",
        "recordings_dir": "recordings",
        "agents_dir": "agents",
        # A free port: another run's daemon on this box may hold the default 8080.
        "http": {"port": free_ports(1)[0]},
        "numbers": [{"number": n, "agent": a} for n, a in numbers.items()],
    }


def campaign_yaml(name: str, **overrides: Any) -> dict[str, Any]:
    """A campaign on the shipped trunk (televox-trunk), open around the clock, no AMD."""
    base: dict[str, Any] = {
        "name": name, "caller_id": "+15550100200", "trunk": "televox-trunk",
        "agent": {"persona_name": "Ava", "business": "Acme Dental", "opening_line": OPENING,
                  "goal": "Confirm the appointment on Tuesday at 10 am. If they cannot come, "
                          "offer a callback from the front desk.",
                  "context": "Acme Dental, 12 Main Street."},
        "calling_window": {"legal_override": True, "start": "00:00", "end": "23:59:59",
                           "weekdays": EVERY_DAY},
        "timezone_policy": {"source": "fixed", "fixed_zone": "UTC"},
        "pacing": {"calls_per_minute": 120, "max_concurrent": 2},
        "retry": {"max_attempts_per_phone": 1, "retry_interval_minutes": 0},
        "amd": False,
        "ring_timeout_s": 6,
        "silence": {"reprompt_after_s": 6, "hangup_after_s": 12, "max_call_duration_s": 40},
        "dtmf_actions": {"9": "opt_out", "1": "interested"},
        "voicemail": {"action": "leave_message",
                      "message": "Hi {{NAME}}, this is Ava, an AI assistant from Acme Dental. "
                                 "Please call us back about your appointment. Goodbye."},
    }
    base.update(overrides)
    return base


class Daemon:
    def __init__(self, workdir: Path, address: PbxAddress, *, numbers: dict[str, str],
                 models_dir: Path, logged_in: Callable[[], bool]) -> None:
        """`numbers`: DID (E.164) -> the agent answering calls to it."""
        self.workdir = workdir
        self.address = address
        self.settings = workdir / "televox.yaml"
        self.campaigns = workdir / "campaigns"
        self.campaigns.mkdir(parents=True, exist_ok=True)
        self.agents = workdir / "agents"
        self.agents.mkdir(parents=True, exist_ok=True)
        self.settings.write_text(yaml.safe_dump(settings_yaml(
            address, numbers=numbers, models_dir=models_dir)),
            encoding="utf-8")
        self._logged_in = logged_in
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TELEVOX_AMI_SECRET": self.address.secret, "HF_HUB_OFFLINE": "1",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                env.get("PYTHONPATH")]))})
        return env

    def start(self, timeout_s: float = 240.0) -> None:
        """`televox serve`; returns once it has loaded its models and logged in to AMI."""
        self.starts += 1
        log = self.workdir / f"daemon-{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "televox_pbx", "-c", str(self.settings), "serve"],
                cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"televox serve exited with {self.proc.returncode}: "
                                     f"{log.read_text(errors='replace')[-3000:]}")
            return self._logged_in()
        wait_until("the daemon to log in to AMI", ready, timeout_s, 0.5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 45.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    # -- the CLI, as a user runs it ------------------------------------------------------

    def cli(self, *args: str, timeout_s: float = 120.0) -> str:
        done = subprocess.run([sys.executable, "-m", "televox_pbx", "-c", str(self.settings),
                               *args], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise AssertionError(f"televox {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done.stdout

    def write_agent(self, name: str, **fields: Any) -> Path:
        path = self.agents / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **fields}), encoding="utf-8")
        return path

    def write_campaign(self, name: str, **overrides: Any) -> Path:
        path = self.campaigns / f"{name}.yaml"
        path.write_text(yaml.safe_dump(campaign_yaml(name, **overrides)), encoding="utf-8")
        return path

    def add_campaign(self, name: str, contacts: list[dict[str, str]], **overrides: Any) -> None:
        """Write campaigns/NAME.yaml and a contacts CSV; `campaign import`, then `start`."""
        self.write_campaign(name, **overrides)
        path = self.workdir / f"{name}-contacts.csv"
        columns = sorted({k for c in contacts for k in c}, key=lambda k: (k != "name", k))
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(contacts)
        self.cli("campaign", "import", name, str(path), "--actor", "test")
        self.cli("campaign", "start", name)

    # -- the store -----------------------------------------------------------------------

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.workdir / 'televox.db'}?mode=ro", uri=True,
                               timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with self.db() as conn:
            return [dict(r) for r in conn.execute(sql, params)]

    def attempts(self, phone: str) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM call_attempts WHERE phone = ? ORDER BY created_at",
                         phone)

    def calls(self, phone: str) -> list[dict[str, Any]]:
        """The attempts that went out: an Originate the PBX refused before dialing (e.g.
        while it shut down) is kept as 'not_sent', and is no call."""
        return [a for a in self.attempts(phone) if a["status"] != "not_sent"]

    def transcript(self, attempt_id: str) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM transcripts WHERE attempt_id = ? ORDER BY turn",
                         attempt_id)

    def recording(self, attempt_id: str) -> Path | None:
        rows = self.rows("SELECT path FROM recordings WHERE attempt_id = ?", attempt_id)
        if not rows:
            return None
        path = Path(rows[0]["path"])
        return path if path.is_absolute() else self.workdir / path

    def campaign_state(self, name: str) -> str | None:
        rows = self.rows("SELECT state FROM campaigns WHERE name = ?", name)
        return str(rows[0]["state"]) if rows else None

    def phone_status(self, phone: str, campaign: str) -> dict[str, Any]:
        rows = self.rows(
            "SELECT p.last_status, p.attempts, c.status AS contact_status FROM contact_phones p "
            "JOIN contacts c ON c.id = p.contact_id JOIN campaigns k ON k.id = p.campaign_id "
            "WHERE p.e164 = ? AND k.name = ?", phone, campaign)
        assert rows, f"no phone {phone} in campaign {campaign}"
        return rows[0]

    def on_dnc(self) -> set[str]:
        return {str(r["e164"]) for r in self.rows("SELECT e164 FROM dnc")}

    def events(self, call_id: str) -> list[dict[str, Any]]:
        import json
        return [json.loads(r["fields_json"]) for r in self.rows(
            "SELECT fields_json FROM ami_events WHERE call_id = ? ORDER BY id", call_id)]

    def wait_campaign_done(self, name: str, timeout_s: float) -> None:
        wait_until(f"campaign {name} to complete",
                   lambda: self.campaign_state(name) == "COMPLETED", timeout_s, 0.5)

    def wait_final(self, phone: str, count: int = 1, timeout_s: float = 90.0,
                   ) -> list[dict[str, Any]]:
        """The phone's calls once `count` of them have a final status and a result."""
        def done() -> list[dict[str, Any]] | None:
            rows = self.calls(phone)
            final = [r for r in rows if r["status"] not in ("intent", "originated", "ringing",
                                                            "answered")]
            return rows if len(final) >= count else None
        result = wait_until(f"{count} final attempt(s) to {phone}", done, timeout_s, 0.5)
        assert isinstance(result, list)
        return result


def sleep(seconds: float) -> None:
    """A real wait: these tests drive real processes on the wall clock."""
    time.sleep(seconds)
