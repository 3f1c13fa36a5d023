"""The agent: prompts, contact variables, tools, opt-out detection and dispositions."""
