"""Daemon settings, loaded from config/televox.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from televox_pbx.config.strict import Strict as _Strict


class AmiSettings(_Strict):
    """AMI connection. No host means: run against the built-in simulator."""

    host: str | None = None
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "televox"
    # The secret never lives in the YAML: it comes from an env var or a file.
    secret_env: str = "TELEVOX_AMI_SECRET"
    secret_file: Path | None = None
    ping_interval_s: float = Field(default=10.0, gt=0)
    ping_timeout_s: float = Field(default=5.0, gt=0)
    reconnect_max_backoff_s: float = Field(default=30.0, gt=0)

    def secret(self) -> SecretStr | None:
        """The AMI secret from secret_file if set, else the env var; None if empty."""
        if self.secret_file is not None:
            value: str | None = self.secret_file.read_text(encoding="utf-8").strip()
        else:
            value = os.environ.get(self.secret_env)
        return SecretStr(value) if value else None

    def secret_status(self) -> tuple[bool, str]:
        """Whether a secret is available and from where, in words; never the secret."""
        if self.secret_file is not None:
            where = f"secret file {self.secret_file}"
            try:
                found = self.secret() is not None
            except (OSError, UnicodeDecodeError) as exc:
                return False, f"{where} is unreadable ({type(exc).__name__})"
            return (True, f"from {where}") if found else (False, f"{where} is empty")
        if self.secret() is not None:
            return True, f"from environment variable {self.secret_env}"
        return False, f"environment variable {self.secret_env} is not set"


class AudioSocketSettings(_Strict):
    bind_host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    # What the dialplan dials: the address Asterisk uses to reach us.
    advertise_host: str = "127.0.0.1"


class DatabaseSettings(_Strict):
    """Where the store lives. `url` picks the backend: `sqlite:///var/televox.db` (the same
    as `path`, the default) or `postgresql://user@host:5432/db`. A PostgreSQL password never
    lives in the YAML nor in the URL: it comes from password_file or the env var."""

    path: Path = Path("var/televox.db")
    url: str | None = None
    password_env: str = "TELEVOX_DB_PASSWORD"
    password_file: Path | None = None
    # On PostgreSQL, this daemon's name among the nodes sharing the database (issue 19):
    # unique per box, stable across restarts. Default: the host's name.
    node_id: str | None = None
    # On PostgreSQL: where this node LISTENs for the other nodes' events (issue 19). LISTEN
    # needs a session of its own, so when `url` goes through pgbouncer in transaction mode
    # this must reach PostgreSQL directly (or pgbouncer in session mode). Default: `url`.
    listen_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _sqlite_url_is_a_path(cls, data: Any) -> Any:
        # sqlite:///rel/path or sqlite:////abs/path: kept as `path`, so everything that
        # resolves or opens the SQLite file keeps working unchanged.
        if isinstance(data, dict) and str(data.get("url") or "").startswith("sqlite:"):
            rest = str(data["url"]).removeprefix("sqlite:").removeprefix("//")
            data = {**data, "url": None, "path": rest.removeprefix("/") or ":memory:"}
        return data

    @field_validator("url", "listen_url")
    @classmethod
    def _postgres_without_password(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("database.url must start with sqlite:/// or postgresql://")
        if parts.password is not None:
            raise ValueError("database.url must not hold a password: put it in "
                             "database.password_file or the database.password_env variable")
        return v

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def target(self) -> str:
        """What Store.open takes: the PostgreSQL URL, or the SQLite file."""
        return self.url if self.url is not None else str(self.path)

    def password(self) -> str | None:
        """The PostgreSQL password (file first, then the env var); None for SQLite."""
        if not self.is_postgres:
            return None
        return _read_secret(self.password_file, None if self.password_file
                            else self.password_env)


class ModelSettings(_Strict):
    stt: str = "whisper-tiny.en"
    llm: str = "qwen2.5-1.5b-instruct-q4_k_m"
    tts: str = "piper-joe-medium"
    # The end-of-turn model (voice/endpointing.py uses it beside the silence timer);
    # None: the silence timer alone decides.
    turn: str | None = "smart-turn-v3.2"
    cache_dir: Path = Path("var/models")
    llm_threads: int = Field(default=2, ge=1)
    # After an answered call hangs up, the LLM summarises it (while no call is live).
    call_summaries: bool = True


def _read_secret(path: Path | None, env: str | None) -> str | None:
    if path is not None:
        return path.read_text(encoding="utf-8").strip() or None
    return (os.environ.get(env) or None) if env else None


class HttpSettings(_Strict):
    """The HTTP API. Tokens never live in the YAML: they come from a file or an env var."""

    bind_host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    api_token_env: str = "TELEVOX_API_TOKEN"
    # One token per line, `NAME:TOKEN` (NAME is who the audit log names) or a bare TOKEN
    # (named "api"). Wins over api_token_env when set.
    api_token_file: Path | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024,
                                description="Largest JSON request body (413 above).")
    max_upload_bytes: int = Field(default=50 * 1_048_576, ge=1024,
                                  description="Largest CSV upload (413 above).")
    audit_retention_days: int = Field(default=365, ge=1,
                                      description="API audit rows older than this are purged.")
    public_url: str | None = Field(
        default=None, description="Base URL receivers use to reach this API (webhook links); "
                                  "default http://bind_host:port.")

    def api_token(self) -> SecretStr | None:
        """The first configured token (what a client of this box would use)."""
        tokens = self.api_tokens()
        return next(iter(tokens.values()), None)

    def api_tokens(self) -> dict[str, SecretStr]:
        """name -> token; empty when none is configured (then only /status answers)."""
        raw = _read_secret(self.api_token_file, None if self.api_token_file
                           else self.api_token_env)
        out: dict[str, SecretStr] = {}
        for line in (raw or "").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, token = line.partition(":")
            if not sep:
                name, token = "api", line
            if token.strip():
                out.setdefault(name.strip() or "api", SecretStr(token.strip()))
        return out

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.bind_host}:{self.port}").rstrip("/")


class DashboardSettings(_Strict):
    """The browser dashboard (same port as the API). Log in with an API token, or as
    `admin_user` with the password whose scrypt hash is `admin_password_hash`
    (`python -m televox_pbx.web.ui.passwords` prints one; never the password itself)."""

    admin_user: str = Field(default="admin", min_length=1, max_length=64)
    admin_password_hash: str | None = None
    cost_per_minute: float = Field(default=0.0, ge=0, description="Price of a call minute.")
    currency: str = Field(default="USD", max_length=8)
    session_ttl_h: float = Field(default=12.0, gt=0, le=24 * 30)


WebhookEvent = Literal["campaign.lead.updated", "call.completed", "campaign.state.changed"]


class WebhookSubscription(_Strict):
    """One receiver. Payloads are signed with HMAC-SHA256 using its secret, which comes
    from secret_file or the env var secret_env (never from the YAML)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://")
    campaigns: list[str] = Field(default_factory=list,
                                 description="Campaign names; empty means every campaign.")
    events: list[WebhookEvent] = Field(default_factory=list,
                                       description="Event types; empty means all of them.")
    secret_env: str | None = None
    secret_file: Path | None = None

    def secret(self) -> bytes | None:
        value = _read_secret(self.secret_file, self.secret_env)
        return value.encode("utf-8") if value else None

    def wants(self, event: str, campaign: str | None) -> bool:
        return (not self.events or event in self.events) and (
            not self.campaigns or campaign in self.campaigns)


class WebhookSettings(_Strict):
    subscriptions: list[WebhookSubscription] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0, description="Per delivery attempt.")
    retry_base_s: float = Field(default=30.0, gt=0,
                                description="First retry delay; doubles on each failure.")
    retry_max_interval_s: float = Field(default=3600.0, gt=0)
    give_up_after_h: float = Field(default=24.0, gt=0,
                                   description="No retry later than this after the event.")
    poll_interval_s: float = Field(default=1.0, gt=0)
    max_in_flight: int = Field(default=4, ge=1, le=64,
                               description="Deliveries under way at once, per subscription.")
    log_retention_days: int = Field(
        default=30, ge=1, description="Delivered or failed deliveries older than this, with "
                                      "their attempt log, are purged (pending never are).")


class EventLogSettings(_Strict):
    jsonl_path: Path = Path("var/log/ami-events.jsonl")
    max_bytes: int = Field(default=10_000_000, gt=0)
    backups: int = Field(default=5, ge=0)
    retention_days: int = Field(default=30, ge=1)
    # Event fields whose values are masked before they are stored (Secret is always masked).
    mask_fields: list[str] = Field(default_factory=lambda: ["Secret", "CallerIDNum",
                                                            "ConnectedLineNum", "Exten"])


class LoggingSettings(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class SimulatorSettings(_Strict):
    """The embedded PBX simulator, started when ami.host is not set."""

    scenario: Path | None = Path("sim-scenario.yaml")
    recordings_dir: Path = Path("var/sim")


class ControlSettings(_Strict):
    """The daemon's local control channel (`televox call` goes through it): a Unix socket
    and a token file, both mode 0600. Unset paths sit next to the database."""

    enabled: bool = True
    socket_path: Path | None = None  # default: <database dir>/<database stem>.sock
    token_path: Path | None = None  # default: <database dir>/<database stem>.token


class CapacitySettings(_Strict):
    """Live conversations at once (config/capacity.py; bench/capacity.py measures them)."""

    conversations: int | None = Field(
        default=None, ge=1, le=1000,
        description="Live conversations at once, all campaigns and call-now together; "
                    "unset: per_core x the cores of the box.")
    # A callee turn costs ~4.7 CPU s (STT, the reply's LLM pass and decode, TTS; the
    # opening included; bench/capacity.py) and comes every ~7 s: one call keeps ~1/3 of a
    # 2-core box busy, so 2 calls queue little and 3 queue a lot.
    per_core: float = Field(
        default=1.0, gt=0, le=100,
        description="Conversations one core serves at p95 first audio <= 2 s "
                    "(measure with bench/capacity.py on a quiet box).")
    enforce: bool = Field(default=True, description="Cap conversations at per_core x cores "
                                                    "(off: only warn at start).")
    scheduler: bool = Field(default=True, description="Engine work in earliest-deadline-"
                            "first order, a reply's first clause first (off: as calls ask).")


INBOUND_CAMPAIGN_GONE = (
    "inbound_campaign is gone: an inbound call is answered by the agent of the number it "
    "was made to. Move the campaign's agent to config/agents/NAME.yaml and list the number: "
    "numbers: [{number: '+15550100200', agent: NAME}]")


class PhoneNumber(_Strict):
    """One of the business's numbers (a DID), in E.164."""

    number: str = Field(pattern=r"^\+[1-9]\d{6,14}$", description="E.164, e.g. +15550100200.")
    agent: str | None = Field(default=None, description="The agent (config/agents/NAME.yaml) "
                                                        "answering calls to it; none: refused.")
    caller_id: bool = Field(default=True, description="Campaigns may show it as caller ID.")
    sms: bool = Field(default=False, description="SMS may be sent from it (issue 16).")


class Settings(_Strict):
    ami: AmiSettings = AmiSettings()
    audiosocket: AudioSocketSettings = AudioSocketSettings()
    database: DatabaseSettings = DatabaseSettings()
    models: ModelSettings = ModelSettings()
    http: HttpSettings = HttpSettings()
    webhooks: WebhookSettings = WebhookSettings()
    dashboard: DashboardSettings = DashboardSettings()
    events: EventLogSettings = EventLogSettings()
    logging: LoggingSettings = LoggingSettings()
    campaigns_dir: Path = Path("campaigns")
    agents_dir: Path = Path("agents")
    recordings_dir: Path = Path("var/recordings")
    workspace: str = "default"
    # Country for numbers written without one (inbound caller IDs, the DNC list).
    default_country: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    simulator: SimulatorSettings = SimulatorSettings()
    numbers: list[PhoneNumber] = Field(
        default_factory=list,
        description="The business's numbers (DIDs): the agent answering each, and whether "
                    "campaigns may show it as caller ID. Calls to other numbers are refused.")
    # Gone (issue 18): inbound calls go to the dialled number's agent. Kept only to say so.
    inbound_campaign: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    max_concurrent_calls: int = Field(default=10, ge=1, le=1000)
    capacity: CapacitySettings = CapacitySettings()
    control: ControlSettings = ControlSettings()

    @field_validator("inbound_campaign")
    @classmethod
    def _gone(cls, v: Any) -> None:
        if v is not None:
            raise ValueError(INBOUND_CAMPAIGN_GONE)
        return None

    @field_validator("numbers")
    @classmethod
    def _unique(cls, v: list[PhoneNumber]) -> list[PhoneNumber]:
        seen = [n.number for n in v]
        for number in seen:
            if seen.count(number) > 1:
                raise ValueError(f"{number} is listed twice")
        return v

    def number(self, e164: str) -> PhoneNumber | None:
        return next((n for n in self.numbers if n.number == e164), None)
