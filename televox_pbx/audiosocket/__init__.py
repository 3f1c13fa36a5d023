"""AudioSocket: sans-IO codec, asyncio server, 20 ms pacer."""
