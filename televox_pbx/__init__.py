"""Televox PBX: a self-hosted AI calling server for Asterisk, on local models."""

__version__ = "0.1.0"
