"""AMI: sans-IO codec, asyncio client, call tracking."""
