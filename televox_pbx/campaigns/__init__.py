"""Campaigns: import, compliance (windows, DNC), scheduling, the dialer loop."""
