"""Render a throw-away etc/asterisk from the project's own asterisk/*.conf.

The shipped files are what a user copies to /etc/asterisk. This fills in exactly the edits
asterisk/README.md (and the README's "Run against your own Asterisk") tells a user to make:
the AMI secret, the trunk's host and credentials, and the AudioSocket address. Because
several PBXes may run on one box, the listening ports move to free ones too (AMI 5038 and
SIP 5060 in the shipped files). Everything else is used as shipped. The files a packaged
Asterisk already has (asterisk.conf, modules.conf, logger.conf) are written here, with
every directory inside the throw-away tree.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

SHIPPED = ("manager.conf", "pjsip.conf", "extensions.conf", "amd.conf")

# What the dialplan and trunk need (asterisk/README.md, step 1), plus what chan_pjsip and
# the dialplan functions the shipped files use depend on. autoload=no makes the list exact.
MODULES = (
    "res_timing_timerfd.so", "res_sorcery_config.so", "res_sorcery_memory.so",
    "res_sorcery_astdb.so", "res_pjproject.so", "res_pjsip.so", "res_pjsip_session.so",
    "res_pjsip_pubsub.so",
    "res_pjsip_sdp_rtp.so", "res_pjsip_nat.so", "res_pjsip_caller_id.so",
    "res_pjsip_rfc3326.so", "res_pjsip_endpoint_identifier_ip.so",
    "res_pjsip_endpoint_identifier_user.so", "res_pjsip_authenticator_digest.so",
    "res_pjsip_outbound_authenticator_digest.so", "res_pjsip_outbound_registration.so",
    "res_pjsip_dtmf_info.so", "res_pjsip_logger.so", "res_rtp_asterisk.so", "chan_pjsip.so",
    "codec_ulaw.so", "codec_alaw.so", "pbx_config.so", "app_audiosocket.so",
    "res_audiosocket.so", "app_amd.so", "app_userevent.so", "func_uuid.so",
    "func_callerid.so", "res_pjsip_messaging.so", "func_base64.so",
)


@dataclass(frozen=True, slots=True)
class PbxAddress:
    """Loopback ports of one rendered PBX and its far end."""

    sip_port: int  # Asterisk's own SIP transport
    ami_port: int
    audiosocket_port: int  # the daemon's AudioSocket server
    far_end_port: int  # the SIPp user agent playing the provider
    secret: str
    sip_username: str = "televox-test"
    sip_password: str = "not-a-real-password"
    host: str = "127.0.0.1"


class RenderError(AssertionError):
    """A shipped file no longer has the line a user is told to edit."""


def _edit(text: str, name: str, edits: list[tuple[str, str]]) -> str:
    """Apply (regex, replacement) line edits; each must match at least once."""
    for pattern, repl in edits:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        if n == 0:
            raise RenderError(f"{name}: no line matches {pattern!r}; update the README too")
    left = re.findall(r"^[^;\n]*(REPLACE_\w+|CHANGE_ME\w*)", text, flags=re.M)
    if left:
        raise RenderError(f"{name}: placeholders left unfilled: {sorted(set(left))}")
    return text


def manager_conf(text: str, a: PbxAddress) -> str:
    return _edit(text, "manager.conf", [
        (r"^secret = CHANGE_ME_TO_A_LONG_RANDOM_SECRET$", f"secret = {a.secret}"),
        (r"^port = 5038$", f"port = {a.ami_port}"),
    ])


def pjsip_conf(text: str, a: PbxAddress) -> str:
    provider = f"{a.host}:{a.far_end_port}"
    return _edit(text, "pjsip.conf", [
        (r"^bind = 0\.0\.0\.0:5060$", f"bind = {a.host}:{a.sip_port}"),
        (r"^contact = sip:REPLACE_PROVIDER_HOST:5060$", f"contact = sip:{provider}"),
        (r"^(server_uri = sip:)REPLACE_PROVIDER_HOST$", rf"\g<1>{provider}"),
        (r"^(client_uri = sip:)REPLACE_SIP_USERNAME@REPLACE_PROVIDER_HOST$",
         rf"\g<1>{a.sip_username}@{provider}"),
        (r"^(from_domain = )REPLACE_PROVIDER_HOST$", rf"\g<1>{a.host}"),
        (r"^(match = )REPLACE_PROVIDER_HOST$", rf"\g<1>{a.host}"),
        (r"^((?:username|from_user|contact_user) = )REPLACE_SIP_USERNAME$",
         rf"\g<1>{a.sip_username}"),
        (r"^(password = )REPLACE_SIP_PASSWORD$", rf"\g<1>{a.sip_password}"),
    ])


def extensions_conf(text: str, a: PbxAddress) -> str:
    return _edit(text, "extensions.conf", [
        (r"^TELEVOX_AUDIOSOCKET=127\.0\.0\.1:9092$",
         f"TELEVOX_AUDIOSOCKET={a.host}:{a.audiosocket_port}"),
    ])


def asterisk_conf(etc: Path, var: Path, prefix: Path) -> str:
    return f"""[directories]
astetcdir => {etc}
astmoddir => {prefix}/lib/asterisk/modules
astvarlibdir => {var}/lib
astdbdir => {var}/lib
astkeydir => {var}/lib
astdatadir => {prefix}/var/lib/asterisk
astagidir => {var}/agi
astspooldir => {var}/spool
astrundir => {var}/run
astlogdir => {var}/log
astsbindir => {prefix}/sbin
astcachedir => {var}/cache

[options]
verbose = 3
debug = 0
documentation_language = en_US
"""


def modules_conf() -> str:
    return "[modules]\nautoload = no\n" + "".join(f"load = {m}\n" for m in MODULES)


LOGGER_CONF = """[general]
dateformat = %F %T.%3q

[logfiles]
full.log => notice,warning,error,verbose,dtmf
"""


def render(src: Path, root: Path, prefix: Path, address: PbxAddress) -> Path:
    """Write root/etc/asterisk/*.conf (and the var tree); returns asterisk.conf's path."""
    etc = root / "etc" / "asterisk"
    var = root / "var"
    for d in (etc, var / "lib", var / "spool", var / "run", var / "log", var / "agi",
              var / "cache"):
        d.mkdir(parents=True, exist_ok=True)
    fill = {"manager.conf": manager_conf, "pjsip.conf": pjsip_conf,
            "extensions.conf": extensions_conf}
    for name in SHIPPED:
        text = (src / name).read_text(encoding="utf-8")
        editor = fill.get(name)
        if editor is None:
            shutil.copyfile(src / name, etc / name)
        else:
            (etc / name).write_text(editor(text, address), encoding="utf-8")
    (etc / "modules.conf").write_text(modules_conf(), encoding="utf-8")
    (etc / "logger.conf").write_text(LOGGER_CONF, encoding="utf-8")
    conf = etc / "asterisk.conf"
    conf.write_text(asterisk_conf(etc, var, prefix), encoding="utf-8")
    return conf
