"""The daemon's local control channel: `televox call` asks the running daemon to place
the call (server.py, service.py in the daemon; client.py in the CLI)."""
