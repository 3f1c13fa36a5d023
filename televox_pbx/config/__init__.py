"""Typed configuration: settings (televox.yaml) and campaigns (campaigns/*.yaml)."""
