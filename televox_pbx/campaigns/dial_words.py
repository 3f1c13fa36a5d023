"""What the Dialer says and sends: a gate refusal in words an operator can act on, and the
channel variables of an Originate."""

from __future__ import annotations

import re
from datetime import UTC
from zoneinfo import ZoneInfo

from televox_pbx.campaigns import gate
from televox_pbx.config.campaign import Campaign
from televox_pbx.store import dial_queue as dq

# Channel variable names AMI and the dialplan accept.
_VAR_NAME = re.compile(r"[^A-Za-z0-9_]")


def channel_variables(cfg: Campaign, cand: dq.Candidate, call_id: str,
                      zones: tuple[str, ...]) -> dict[str, str]:
    out = {f"TELEVOX_VAR_{_VAR_NAME.sub('_', k).upper()}":
           v.replace("\r", " ").replace("\n", " ") for k, v in cand.variables.items()}
    out.update({"TELEVOX_CALL_ID": call_id, "TELEVOX_CAMPAIGN": cfg.name,
                "TELEVOX_CONTACT_ID": str(cand.contact_id),
                "TELEVOX_AMD": "1" if cfg.amd == "asterisk" else "0"})
    if len(zones) == 1:  # the agent books callbacks in it; a guess would be worse
        out["TELEVOX_ZONE"] = zones[0]
    return out


def refusal_text(decision: gate.GateDecision) -> str:
    """The gate's refusal in words an operator can act on."""
    zones = ", ".join(decision.zones)
    if decision.reason is gate.GateReason.DNC:
        return "the number is on the DNC list"
    if decision.reason is gate.GateReason.OUTSIDE_WINDOW:
        text = f"outside the calling window in {zones or 'the callee zone'}"
        opens = decision.next_open_at
        if opens is not None and len(decision.zones) == 1:
            local = opens.astimezone(ZoneInfo(decision.zones[0]))
            text += f"; it opens at {local:%Y-%m-%d %H:%M} {decision.zones[0]}"
        elif opens is not None:
            text += f"; it opens at {opens.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        return text
    if decision.reason is gate.GateReason.UNKNOWN_TIMEZONE:
        return ("the callee's time zone is unknown; set the contact's timezone column "
                "(an IANA name such as America/New_York) and import again")
    if decision.reason is gate.GateReason.INVALID_NUMBER:
        return "not a valid phone number"
    return decision.detail


# A claim the cluster refused before any contact was touched: (CallNowResult code, words).
# The Dialer stops dialling for this tick on any of them.
CLUSTER_REFUSALS = {
    "full": ("capacity", "all lines busy (the campaign's max_concurrent over all nodes)"),
    "paced": ("capacity", "the campaign's calls per minute are spent over all nodes; "
                          "try again shortly"),
    "no_lease": ("not_ready", "this node's lease has lapsed (or a newer start of it took "
                              "over): it claims nothing until the lease is renewed"),
}
