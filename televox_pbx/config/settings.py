"""Daemon settings, loaded from config/televox.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.json_schema import SkipJsonSchema


class _Strict(BaseModel):
    # YAML reads `username: 1001` as a number; string fields take it as text.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


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
    path: Path = Path("var/televox.db")


class ModelSettings(_Strict):
    stt: str = "whisper-tiny.en"
    llm: str = "qwen2.5-1.5b-instruct-q4_k_m"
    tts: str = "piper-joe-medium"
    # The end-of-turn model (voice/endpointing.py uses it beside the silence timer);
    # None: the silence timer alone decides.
    turn: str | None = "smart-turn-v3.2"
    cache_dir: Path = Path("var/models")
    llm_threads: int = Field(default=2, ge=1)


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
