"""IVR campaigns (issue 16): prompts, keys and answers, with no LLM in the loop."""
