"""Parking a real llama.cpp reply mid-way (llm_park.py) leaves it exactly as it was.

Greedy decoding (temperature 0) of call A's reply, twice straight through and once parked
after its first few pieces while call B's whole reply runs on the same context. Each A run
starts from an empty context with no saved states, so its prompt is evaluated the same way
(llama.cpp's numbers depend on how a prompt is sliced). The A replies must be identical;
prints them, and B's reply.

Usage: .venv/bin/python bench/check_llm_park.py
"""

from __future__ import annotations

import asyncio
import time

from repo_models import model_settings

from televox_pbx.agent.tools import tools_schema
from televox_pbx.voice.engines.holder import Engines
from televox_pbx.voice.interfaces import ChatMessage

SYSTEM = ("You are Ava, an AI assistant calling for Acme Solar to book a free solar "
          "consultation. Keep replies to one or two short sentences.")
A = [ChatMessage("system", SYSTEM),
     ChatMessage("assistant", "Hi, this is Ava from Acme Solar. Could we book a visit?"),
     ChatMessage("user", "What does the consultation involve, and how long is it?")]
B = [ChatMessage("system", SYSTEM + " The callee is called Sam."),
     ChatMessage("assistant", "Hi Sam, this is Ava from Acme Solar."),
     ChatMessage("user", "Who is this again?")]


class ParkAfter:
    def __init__(self, n: int, other: asyncio.Future[None]) -> None:
        self.n, self.asked, self.other = n, 0, other
        self.parked_s = 0.0

    def should_park(self) -> bool:
        self.asked += 1
        return self.asked == self.n

    async def wait_turn(self) -> None:
        t = time.perf_counter()
        await self.other
        self.parked_s = time.perf_counter() - t


async def main() -> None:
    llm = Engines(model_settings()).llm()
    llm.temperature = 0.0
    schema = tools_schema(transfer_available=False)

    def fresh() -> None:
        llm.cancel_background()  # the last run's warm-up must not touch the next run
        with llm._worker.lock:
            pass
        llm._llama.reset()
        if llm._states is not None:
            llm._states._items.clear()
            llm._states._bytes = 0

    async def say(msgs: list[ChatMessage], yielder: object = None) -> str:
        stream = llm.stream(msgs, schema, yielder=yielder)  # type: ignore[arg-type]
        return "".join([d.text async for d in stream])

    fresh()
    straight = await say(A)
    fresh()
    again = await say(A)
    fresh()
    loop = asyncio.get_running_loop()
    b_done: asyncio.Future[None] = loop.create_future()
    b_text: list[str] = []

    async def other() -> None:
        b_text.append(await say(B))
        b_done.set_result(None)

    yielder = ParkAfter(4, b_done)

    async def a_parked() -> str:
        text = ""
        async for d in llm.stream(A, schema, yielder=yielder):  # type: ignore[arg-type]
            text += d.text
            if yielder.asked == yielder.n - 1 and not b_text and not b_done.done():
                asyncio.get_running_loop().create_task(other())
        return text

    parked = await a_parked()
    print(f"A straight: {straight!r}")
    print(f"A again:    {again!r}")
    print(f"A parked:   {parked!r}")
    print(f"B meanwhile: {b_text[0] if b_text else None!r}")
    print(f"identical: {straight == again == parked}; parks: {llm.parked}; A waited "
          f"{yielder.parked_s:.2f} s parked")
    llm.close()


if __name__ == "__main__":
    asyncio.run(main())
