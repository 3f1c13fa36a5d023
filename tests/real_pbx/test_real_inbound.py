"""An inbound call through the real trunk: SIPp dials the DID, the dialplan announces the
call over AMI, the inbound campaign's agent answers."""

from __future__ import annotations

from pathlib import Path

from daemon import Daemon
from evidence import says, show, turns_of
from procs import Pbx, free_ports, sipp_caller, wait_until

SIPP_DIR = Path(__file__).resolve().parent / "sipp"

CALLER_NATIONAL = "2125550199"  # as the provider sends it
CALLER_E164 = "+12125550199"


def test_inbound_call_is_answered_and_the_opt_out_lands_on_dnc_in_e164(
        daemon: Daemon, pbx: Pbx) -> None:
    sip_port, media_port = free_ports(2)
    caller = sipp_caller(pbx.sipp, pbx.run_dir / "sipp", SIPP_DIR / "caller.xml",
                         pbx.address, did="15550100200", caller=CALLER_NATIONAL,
                         sip_port=sip_port, media_port=media_port)
    caller.start()
    try:
        assert caller.wait(60) == 0, caller.out.read_text(errors="replace")[-2000:]
    finally:
        caller.stop()

    def inbound() -> list[dict[str, object]] | None:
        rows = daemon.rows("SELECT * FROM call_attempts WHERE direction = 'inbound'")
        return rows if rows and rows[0]["status"] not in ("answered", "intent") else None
    [call] = wait_until("the inbound call to be stored", inbound, 30)  # type: ignore[misc]
    assert call["status"] == "completed", call
    turns = daemon.transcript(str(call["id"]))
    agent, callee = turns_of(turns, "agent"), turns_of(turns, "callee")
    assert agent and says(agent[0]["text"], "this is Ava, an AI assistant"), show(turns)
    assert callee, show(turns)
    assert CALLER_E164 in daemon.on_dnc(), (
        f"DNC holds {sorted(daemon.on_dnc())}, not the caller in E.164")


def test_each_number_is_answered_by_its_own_agent(daemon: Daemon, pbx: Pbx) -> None:
    """Two numbers, two agents: each caller hears the first message of the agent of the
    number it dialled."""
    from conftest import INBOUND_AGENTS

    heard: dict[str, str] = {}
    for number, (_, _, first) in INBOUND_AGENTS.items():
        sip_port, media_port = free_ports(2)
        caller_num = f"21255501{len(heard) + 50}"
        caller = sipp_caller(pbx.sipp, pbx.run_dir / "sipp", SIPP_DIR / "caller.xml",
                             pbx.address, did=number.removeprefix("+"), caller=caller_num,
                             sip_port=sip_port, media_port=media_port)
        caller.start()
        try:
            assert caller.wait(60) == 0, caller.out.read_text(errors="replace")[-2000:]
        finally:
            caller.stop()

        def stored(caller_num: str = caller_num) -> list[dict[str, object]] | None:
            rows = daemon.rows("SELECT * FROM call_attempts WHERE direction = 'inbound' "
                               "AND phone = ?", f"+1{caller_num}")
            return rows if rows and rows[0]["status"] not in ("answered", "intent") else None
        [call] = wait_until(f"the call to {number} to be stored", stored, 30)  # type: ignore[misc]
        agent = turns_of(daemon.transcript(str(call["id"])), "agent")
        assert agent, f"no agent turn on the call to {number}"
        heard[number] = str(agent[0]["text"])
        assert says(heard[number], first), (number, heard[number])
    assert len(set(heard.values())) == 2
