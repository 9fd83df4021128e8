"""Developer tools: tiny random checkpoints for tests and for anyone without the real weights."""
