"""Voice: engines behind small interfaces, and the real-time turn loop."""
